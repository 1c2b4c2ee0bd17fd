"""Tooltips and fixed choices of the widget's controls, in one place (as micro-sam keeps its tooltips)."""





TOOLTIPS = {
    "image": "The H&E image to segment (RGB, 8 bits). Slides above 2048 x 2048 run tile by tile.",
    "scheme": "Unstructured magnitude pruning: layer-wise keeps the same fraction of every layer, network-wide "
              "ranks all weights together. Dense: the unpruned model.",
    "cr": "Compression ratio: prunable weights of the dense model / weights kept. 'other' prunes any CR one-shot.",
    "cr_other": "Any compression ratio, made now by one-shot magnitude pruning (not fine-tuned).",
    "fine_tuned": "Fine-tuned after pruning (the zoo's models); untick for the same CR pruned one-shot.",
    "model_note": "The zoo's measured accuracy of this pair on the MoNuSeg test split and GBM40 (prunuclei sweep).",
    "device": "Where the networks run.",
    "fg": "Foreground threshold: a pixel is nucleus where the semantic probability exceeds it.",
    "marker": "Marker threshold: watershed seeds are the parts of the distance map above it.",
    "min_size": "Nuclei (and markers) smaller than this many pixels at the models' 40x (0.25 µm/px) are dropped; "
                "at another pixel size the same area in µm² is used.",
    "defaults_btn": "Set the thresholds back to the own ones of the shown run's model A (tuned on held-back "
                    "training images) and run its watershed again; before any run: the chosen model's own.",
    "reference": "Model B: the chosen model (A) is compared with it, each with its own thresholds. Dense by "
                 "default; any zoo model (e.g. layer-wise against network-wide at one CR); or none.",
    "region": "Run on the part of the image shown in the canvas only (zoom to a region of a slide first; at "
              "most 2048 x 2048 px): the full comparison there, results placed on the slide.",
    "pixel_size": "Micrometres per pixel (read from the image's TIFF/OME metadata when it has one; 0 = unknown). "
                  "With it, areas are in µm² in the numbers, the features table and the exports.",
    "report_path": "The folder the report is written into (made if missing).",
    "report_btn": "Write a report folder: numbers (Markdown and CSV), parameters, model ids and sha256, the CR "
                  "sweep rows, the charts and a picture of the run at the image's resolution (canvas.png).",
    "time_btn": "Time A's and B's networks and watershed on the shown run's image (or region), interleaved A, B, "
                "A, B... after one warm-up each: the numbers then give the median of 3 and its ratio (a run "
                "alone times each model once). Cancel stops it.",
    "truth": "A labels layer of ground-truth nuclei (instance ids) to score both models against. Empty? Open "
             "a label image (.tif or 16-bit .png of ids) with File > Open: it opens as a Labels layer.",
    "run_btn": "Run the chosen model (and dense) in the background (Ctrl+Shift+R).",
    "cancel_btn": "Stop the running job; nothing is shown or written.",
    "progress": "Steps (tiles and branches) done.",
    "side_by_side": "napari grid mode, one camera: model B (dense) on the left, model A on the right "
                    "(Ctrl+Shift+G).",
    "fill_nuclei": "Nuclei as fills (each model in shades of its colour) instead of outlines in its colour.",
    "legend": "What each colour on the canvas is: one colour per model, the disagreement kinds as thick rings.",
    "numbers": "Nuclei counts, agreement with dense and ground truth, weights pruned, timings and thresholds.",
    "export_path": "Where to export: .tif/.tiff (ids), .png (16-bit), .geojson/.json (QuPath), .csv (measurements); "
                   "the extension is needed, and an existing file needs 'overwrite'.",
    "export_what": "Which result to export, of the run shown (not the model the controls name now): model A's "
                   "nuclei, model B's (dense by default), or the disagreement: "
                   ".geojson/.csv one feature/row per event (its kind and both models' nucleus ids), .tif/.png the "
                   "map of kinds.",
    "overwrite": "Unticked, an existing file is never replaced.",
    "export_btn": "Export (in the background; slides block by block), with the run's provenance in the file.",
    "sweep_btn": "Every registered scheme and zoo CR (unstructured and channel) on this image: AJI against dense "
                 "(and the ground truth) against CR in the chart; each model's seconds in the report's sweep.csv.",
    "curves": "Which curves the sweep chart draws: each pair against dense, against the ground truth, or both "
              "(a report's chart has both).",
    "chart_window_btn": "Both charts, larger, in a window that follows the dock's: zoom and pan with its toolbar; "
                        "a point's scheme, CR and value show under the pointer.",
    "prev_diff_btn": "Go to the previous disagreement event of the shown run (in the table's order).",
    "next_diff_btn": "Go to the next disagreement event of the shown run (in the table's order).",
}

#: the Differences tab's table
DIFFERENCES_TIP = ("The shown run's disagreement events: one per connected group of nuclei the other model does not "
                   "match (missed: a B nucleus A lacks; extra: an A nucleus B lacks; split: one B nucleus, several A "
                   "nuclei; merged: several B nuclei, one A nucleus), with the nucleus ids of both models' instance "
                   "layers, the area and the position (row, column of its centre in the image, px). Click a row to "
                   "go there; click a header to sort.")


#: what the Export button can write
EXPORT_WHAT = ("model A of the run shown", "model B of the run shown", "disagreement")  # (not the controls' A)


#: a threshold edit waits this long for the next one before the watershed re-runs
DEBOUNCE_MS = 300
