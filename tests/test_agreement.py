"""Disagreement of A with B counted in events, on hand-built label images (B = reference, A = other)."""

import numpy as np
import pytest

from napari_prunuclei.base.constants import DISAGREEMENT_KINDS
from napari_prunuclei.nuclei.agreement import KIND_VALUES, disagreement, event_regions, event_text


@pytest.fixture
def pair():
    """B and A: a 1 -> 3 split, a 2 -> 1 merge, a missed and an extra nucleus, a matched pair."""
    b = np.zeros((40, 60), np.int32)
    a = np.zeros_like(b)
    b[2:12, 2:20] = 41
    a[2:12, 2:8], a[2:12, 8:14], a[2:12, 14:20] = 88, 90, 91  # B #41 split in three
    a[20:30, 2:20] = 7
    b[20:30, 2:11], b[20:30, 11:20] = 5, 6  # B #5 and #6 merged into A #7
    b[2:10, 30:38] = 9  # missed by A
    a[20:28, 30:38] = 3  # extra in A
    b[30:38, 45:55], a[30:38, 45:56] = 12, 13  # matched (IoU 80/88)
    return b, a


def test_each_kind_counts_one_event_with_both_models_ids(pair):
    b, a = pair
    d = disagreement(b, a)
    assert d.counts == {"missed": 1, "extra": 1, "split": 1, "merged": 1}  # a 1 -> 3 split is ONE split
    by_kind = {e.kind: e for e in d.events}
    assert (by_kind["split"].b_ids, by_kind["split"].a_ids) == ((41,), (88, 90, 91))
    assert (by_kind["merged"].b_ids, by_kind["merged"].a_ids) == ((5, 6), (7,))
    assert (by_kind["missed"].b_ids, by_kind["missed"].a_ids) == ((9,), ())
    assert (by_kind["extra"].b_ids, by_kind["extra"].a_ids) == ((), (3,))
    split = by_kind["split"]
    assert split.bbox == (2, 2, 12, 20) and split.area == 180 and split.centroid == pytest.approx((6.5, 10.5))
    assert split.mask.shape == (10, 18) and split.mask.all()
    assert by_kind["extra"].centroid == pytest.approx((23.5, 33.5)) and by_kind["extra"].area == 64
    assert event_text(split) == "B #41 -> A #88, #90, #91"
    assert event_text(by_kind["missed"]) == "B #9 -> no A nucleus"
    # reading order: top to bottom
    assert [e.kind for e in d.events] == ["split", "missed", "merged", "extra"]


def test_the_image_keeps_one_value_per_kind(pair):
    b, a = pair
    d = disagreement(b, a)
    assert set(DISAGREEMENT_KINDS) == {1, 2, 3, 4} and KIND_VALUES["merged"] == 4
    assert (d.image[2:12, 2:20] == KIND_VALUES["split"]).all()
    assert (d.image[20:30, 2:20] == KIND_VALUES["merged"]).all()
    assert (d.image[2:10, 30:38] == KIND_VALUES["missed"]).all()
    assert (d.image[20:28, 30:38] == KIND_VALUES["extra"]).all()
    assert not d.image[30:38, 45:56].any()  # agreement
    assert int((d.image > 0).sum()) == sum(e.area for e in d.events)


def test_a_split_with_a_piece_matched_elsewhere_names_it():
    """B #1 is cut by A #10 (unmatched) and A #20, which matches B #2 but also covers half of B #1."""
    b = np.zeros((20, 40), np.int32)
    a = np.zeros_like(b)
    b[0:10, 0:12], b[0:10, 12:30] = 1, 2
    a[0:10, 0:5], a[0:10, 5:30] = 10, 20
    d = disagreement(b, a)
    assert d.counts == {"missed": 0, "extra": 0, "split": 1, "merged": 0}
    (e,) = d.events
    assert e.b_ids == (1,) and e.a_ids == (10, 20) and e.area == 120  # the pixels: the unmatched nuclei


def test_identical_and_empty_segmentations_have_no_event():
    lab = np.zeros((16, 16), np.uint16)
    lab[2:8, 2:8] = 3
    for b, a in ((lab, lab), (np.zeros_like(lab), np.zeros_like(lab))):
        d = disagreement(b, a)
        assert d.events == [] and set(d.counts.values()) == {0} and not d.image.any()
    d = disagreement(lab, np.zeros_like(lab))  # A found nothing: one missed
    assert d.counts["missed"] == 1 and d.events[0].b_ids == (3,)


def test_events_as_regions_carry_kind_colour_and_ids(pair):
    b, a = pair
    events = disagreement(b, a).events
    regions = event_regions(events)
    assert [r.name for r in regions] == [e.kind for e in events]
    split = regions[0]
    assert split.color == (255, 208, 0) and split.origin == (2, 2)
    assert split.properties == {"kind": "split", "a_ids": [88, 90, 91], "b_ids": [41]}


def test_a_fragment_inside_a_matched_nucleus_is_a_split_and_a_swallowed_nucleus_a_merge():
    """Pathologist pass: an A fragment 96 % inside a B nucleus (matched to another A nucleus) was "extra"; a B
    nucleus inside A's matched nucleus was "missed"."""
    import numpy as np

    from napari_prunuclei.nuclei.agreement import disagreement

    b = np.zeros((60, 60), np.int32)
    a = np.zeros((60, 60), np.int32)
    b[5:25, 5:25] = 1  # B #1 ...
    a[5:25, 5:22] = 7  # ... matched by A #7 (IoU 0.85), with A #9 a fragment inside it
    a[5:25, 22:25] = 9
    a[35:55, 35:55] = 3  # A #3 ...
    b[35:55, 35:52] = 4  # ... matched to B #4, and B #6 swallowed by it
    b[35:55, 52:55] = 6
    d = disagreement(b, a)
    kinds = {e.kind: e for e in d.events}
    assert d.counts == {"missed": 0, "extra": 0, "split": 1, "merged": 1}
    assert kinds["split"].b_ids == (1,) and set(kinds["split"].a_ids) == {7, 9}
    assert set(kinds["merged"].b_ids) == {4, 6} and kinds["merged"].a_ids == (3,)


def test_two_nuclei_swallowed_by_one_matched_nucleus_are_one_merge():
    """Second reviewer: A #47 matched to B #41 and swallowing B #44 and B #54 was two merged events."""
    import numpy as np

    from napari_prunuclei.nuclei.agreement import disagreement

    b = np.zeros((40, 60), np.int32)
    a = np.zeros((40, 60), np.int32)
    a[5:30, 5:50] = 47
    b[5:30, 5:40] = 41  # matched to A #47 (IoU 0.78)
    b[5:17, 41:50] = 44
    b[18:30, 41:50] = 54
    d = disagreement(b, a)
    assert d.counts == {"missed": 0, "extra": 0, "split": 0, "merged": 1}, d.counts
    (e,) = d.events
    assert e.a_ids == (47,) and set(e.b_ids) == {41, 44, 54}


def test_fragments_crosswise_in_one_matched_pair_are_one_event():
    """Pathologist, session 39: A #242 matched to B #245, with A #251 inside B #245 and B #251 inside A #242, was
    counted as a merge and a split (the same nuclei in two events); it is one group, one event."""
    b = np.zeros((40, 60), np.int32)
    a = np.zeros_like(b)
    b[5:30, 5:40] = 245
    a[5:30, 5:37] = 242  # matched to B #245 (IoU 0.8) ...
    a[5:30, 37:40] = 251  # ... A #251 inside B #245
    a[5:30, 40:45] = 242
    b[5:30, 40:45] = 251  # ... and B #251 inside A #242
    d = disagreement(b, a)
    assert sum(d.counts.values()) == 1, d.counts
    (e,) = d.events
    assert set(e.a_ids) == {242, 251} and set(e.b_ids) == {245, 251}


def test_fragments_of_one_pair_stay_one_event_whatever_the_ids_order():
    """Review, session 39: grouping fragments by their matched pair by relabelling lost a pair's later fragment
    when another pair's group joined in between (two events or one, by the order of A's ids)."""
    b = np.zeros((30, 72), np.int32)
    a = np.zeros_like(b)
    b[0:20, 0:30], b[0:20, 40:70], b[8:12, 32:38], b[22:26, 5:10], b[22:26, 45:50] = 1, 2, 3, 4, 5
    a[0:27, 0:30], a[0:27, 40:70] = 1, 2
    a[6:14, 22:34] = 3  # a fragment of B #1 (matched to A #1), over a third of the unmatched B #3
    a[6:14, 36:48] = 4  # a fragment of B #2 (matched to A #2), B #3's other piece
    a[14:18, 2:8] = 5  # another fragment of B #1
    swapped = a.copy()
    swapped[a == 3], swapped[a == 5] = 5, 3
    for other in (a, swapped):
        assert [(e.kind, e.a_ids, e.b_ids) for e in disagreement(b, other).events] == \
            [("split", (1, 2, 3, 4, 5), (1, 2, 3, 4, 5))]


def test_a_one_piece_split_and_a_one_part_merge_say_so():
    """A reviewer: a small A nucleus inside a larger unmatched B nucleus, called a "split", reads as an undersized
    nucleus; the event's text now says it is one piece (and a one-part merge one part)."""
    b = np.zeros((20, 40), np.int32)
    a = np.zeros_like(b)
    b[0:12, 0:12] = 4
    a[2:8, 2:8] = 9  # 36 px inside B #4's 144: IoU 0.25, all of A #9 inside B #4
    a[0:14, 20:36] = 5
    b[3:9, 24:30] = 6  # B #6 wholly inside the much larger A #5
    by_kind = {e.kind: e for e in disagreement(b, a).events}
    assert (by_kind["split"].b_ids, by_kind["split"].a_ids) == ((4,), (9,))
    assert event_text(by_kind["split"]).startswith("B #4 -> A #9 (one piece")
    assert (by_kind["merged"].b_ids, by_kind["merged"].a_ids) == ((6,), (5,))
    assert event_text(by_kind["merged"]).startswith("B #6 -> A #5 (one part")
