import io

from amc_widgets.training.log_stream import CleanLineWriter


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_ansi_codes_are_stripped_and_lines_kept():
    target = io.StringIO()
    writer = CleanLineWriter(target)
    writer.write("\x1b[34m\x1b[1mtrain:\x1b[0m scanning\n")
    assert target.getvalue() == "train: scanning\n"


def test_progress_redraws_are_dropped_but_final_frame_kept():
    target, clock = io.StringIO(), FakeClock()
    writer = CleanLineWriter(target, progress_interval=30, clock=clock)
    for i in range(1, 5):
        writer.write(f"\r\x1b[K  1/3  {i * 25}%")
    writer.write("\n")
    assert target.getvalue() == "  1/3  100%\n"


def test_a_long_progress_bar_shows_a_frame_every_interval():
    target, clock = io.StringIO(), FakeClock()
    writer = CleanLineWriter(target, progress_interval=30, clock=clock)
    writer.write("\rframe 1")
    clock.now = 31
    writer.write("\rframe 2")  # frame 1 is complete; 31 s passed, so it is shown
    writer.write("\rframe 3")
    assert target.getvalue() == "frame 1\n"


def test_partial_line_is_flushed_at_close():
    target = io.StringIO()
    writer = CleanLineWriter(target)
    writer.write("no newline")
    assert target.getvalue() == ""
    writer.close_line()
    assert target.getvalue() == "no newline\n"
