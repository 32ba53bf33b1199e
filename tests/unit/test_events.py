"""The Normal events that sum up one reconcile pass (one per reason, group and detail)."""

from ray_operator.events import MAX_NAMES_IN_EVENT, pod_summary


def test_one_pod_reads_like_a_sentence():
    assert pod_summary("CreatedHeadPod", "headgroup", "", ["c-head"]) == "Created head pod c-head"
    assert (
        pod_summary("CreatedWorkerPod", "gpu", "", ["c-gpu-abcde"])
        == "Created worker pod c-gpu-abcde (group gpu)"
    )
    assert (
        pod_summary("DeletedHeadPod", "headgroup", "Failed", ["c-head"])
        == "Deleted head pod c-head (Failed)"
    )


def test_many_pods_are_counted_and_named_up_to_a_limit():
    names = [f"c-cpu-{i}" for i in range(MAX_NAMES_IN_EVENT + 5)]
    message = pod_summary("DeletedWorkerPod", "cpu", "WorkersToDelete", names)
    assert message.startswith(f"Deleted {len(names)} worker pods (group cpu, WorkersToDelete): ")
    assert message.endswith(f"c-cpu-{MAX_NAMES_IN_EVENT - 1} and 5 more")
    assert f"c-cpu-{MAX_NAMES_IN_EVENT}," not in message


def test_a_few_pods_are_all_named():
    message = pod_summary("CreatedWorkerPod", "cpu", "", ["a", "b", "c"])
    assert message == "Created 3 worker pods (group cpu): a, b, c"
