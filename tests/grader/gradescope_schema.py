"""What Gradescope accepts in results.json, as the tests check it."""

VISIBILITIES = {"visible", "hidden", "after_due_date", "after_published"}


def validate(results: dict) -> None:
    assert isinstance(results["score"], (int, float))
    assert isinstance(results.get("execution_time", 0), (int, float))
    assert isinstance(results["tests"], list)
    for t in results["tests"]:
        assert isinstance(t["name"], str) and t["name"]
        assert isinstance(t["score"], (int, float)) and isinstance(t["max_score"], (int, float))
        assert 0 <= t["score"] <= t["max_score"] + 1e-9
        assert t["status"] in ("passed", "failed")
        assert t["visibility"] in VISIBILITIES
        assert isinstance(t["output"], str)
        assert isinstance(t.get("number", ""), str)
    assert abs(sum(t["score"] for t in results["tests"]) - results["score"]) < 1e-3
