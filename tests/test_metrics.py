import re

import pandas as pd
import pytest

from amc_widgets.core.metrics import (
    METRIC_NAMES,
    append_metrics,
    format_metrics_line,
    metric_definitions,
    parse_metrics,
)


def _values(epoch):
    return {name: 0.1 * i + epoch for i, name in enumerate(METRIC_NAMES)} | {"epoch": epoch, "epochs": 5}


def test_lines_round_trip_through_the_parser():
    lines = ["noise", *(f"2024-01-01 algo-1 {format_metrics_line(_values(e))}" for e in (1, 2, 3)), "more"]
    frame = parse_metrics(lines)
    assert list(frame.columns) == list(METRIC_NAMES)
    assert frame["epoch"].tolist() == [1, 2, 3]
    assert frame.loc[1, "mAP50-95"] == pytest.approx(_values(2)["mAP50-95"], rel=1e-5)


def test_repeated_epoch_after_resume_keeps_the_later_line():
    first, again = _values(2), _values(2) | {"mAP50": 0.99}
    frame = parse_metrics([format_metrics_line(_values(1)), format_metrics_line(first),
                           format_metrics_line(again)])
    assert frame["epoch"].tolist() == [1, 2]
    assert frame.loc[1, "mAP50"] == pytest.approx(0.99)


def test_a_log_appended_piece_by_piece_gives_what_the_whole_log_gives():
    lines = ["noise", format_metrics_line(_values(1)), "more", format_metrics_line(_values(2)),
             format_metrics_line(_values(3)), format_metrics_line(_values(2) | {"mAP50": 0.99}), "end"]
    frame = parse_metrics([])
    for start in range(0, len(lines), 2):  # pieces as polls read them
        frame = append_metrics(frame, lines[start:start + 2])
    pd.testing.assert_frame_equal(frame, parse_metrics(lines))
    assert frame["epoch"].tolist() == [1, 2, 3] and frame.loc[1, "mAP50"] == pytest.approx(0.99)
    assert append_metrics(frame, ["no metrics here"]) is frame  # nothing new: the same frame, no copy


def test_truncated_lines_are_skipped_and_nan_kept():
    line = format_metrics_line(_values(1) | {"precision": float("nan")})
    frame = parse_metrics([line, line[: len(line) // 2]])
    assert len(frame) == 1 and pd.isna(frame.loc[0, "precision"])


def test_metric_definitions_extract_each_value_and_not_its_neighbours():
    values = _values(4)
    line = format_metrics_line(values)
    definitions = {d["Name"]: d["Regex"] for d in metric_definitions()}
    assert "mAP50" in definitions and "mAP50-95" in definitions
    for name, regex in definitions.items():
        match = re.search(regex, line)
        assert match, name
        assert float(match.group(1)) == pytest.approx(values[name], rel=1e-5)
    assert re.search(definitions["mAP50"], "[amc-metrics] epoch=1 mAP50-95=0.5") is None
    assert re.search(definitions["precision"], "[amc-metrics] epoch=1 precision=nan") is None


def test_lines_read_from_a_file_parse_as_the_bare_lines():
    bare = [format_metrics_line(_values(e)) for e in (1, 2, 3)]
    as_read = [bare[0] + "\n", "x\ty " + bare[1].replace("] ", "]   ") + " \r\n", "\x1b[0m" + bare[2] + "\t"]
    pd.testing.assert_frame_equal(parse_metrics(as_read), parse_metrics(bare))
    assert parse_metrics(as_read)["epoch"].tolist() == [1, 2, 3]


def test_a_line_with_a_value_too_many_or_no_epoch_first_is_skipped():
    line = format_metrics_line(_values(1))
    other = format_metrics_line(_values(2))
    assert parse_metrics([line + " x=1", other])["epoch"].tolist() == [2]
    assert parse_metrics([line.replace("epoch=1 epochs", "epochs=1 epoch"), other])["epoch"].tolist() == [2]
