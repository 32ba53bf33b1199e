from ray_operator.ownwrites import OwnStatusWrites

KEY = ("ns", "rc")


def test_the_echo_of_our_write_is_skipped_and_other_versions_are_not() -> None:
    writes = OwnStatusWrites()
    writes.begin(KEY)
    assert writes.end(KEY, "7") is False
    assert writes.is_own(KEY, "7")
    assert not writes.is_own(KEY, "8")  # someone else's later change wakes the cluster
    assert not writes.is_own(("ns", "other"), "7")
    assert not writes.is_own(KEY, None)


def test_events_during_a_write_are_held_and_a_foreign_one_asks_for_a_pass() -> None:
    writes = OwnStatusWrites()
    writes.begin(KEY)
    assert writes.is_own(KEY, "9")  # held: the writer decides when it ends
    assert writes.is_own(KEY, "10")
    assert writes.end(KEY, "10") is True  # "9" was another writer's


def test_only_the_echo_during_a_write_needs_no_pass() -> None:
    writes = OwnStatusWrites()
    writes.begin(KEY)
    assert writes.is_own(KEY, "10")
    assert writes.end(KEY, "10") is False


def test_a_failed_write_reports_what_arrived_meanwhile_and_keeps_no_version() -> None:
    writes = OwnStatusWrites()
    writes.begin(KEY)
    assert writes.end(KEY, None) is False
    writes.begin(KEY)
    writes.is_own(KEY, "11")
    assert writes.end(KEY, None) is True
    assert not writes.is_own(KEY, "11")


def test_forget_drops_the_version() -> None:
    writes = OwnStatusWrites()
    writes.begin(KEY)
    writes.end(KEY, "7")
    writes.forget(KEY)
    assert not writes.is_own(KEY, "7")
