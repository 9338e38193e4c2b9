"""The container runs as an unprivileged user (issue 15 item 8): read from the Dockerfile,
since building images needs a Docker daemon the test machines do not have."""

from __future__ import annotations

from pathlib import Path

DOCKERFILE = Path(__file__).resolve().parents[1] / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_the_image_runs_as_an_unprivileged_user_that_owns_only_data() -> None:
    steps = _instructions()
    users = [i for i, (word, _) in enumerate(steps) if word == "USER"]
    assert users, "the Dockerfile never switches away from root"
    last_user = steps[users[-1]][1]
    assert last_user.split(":")[0] not in ("root", "0"), last_user
    cmd = max(i for i, (word, _) in enumerate(steps) if word in ("CMD", "ENTRYPOINT"))
    assert users[-1] < cmd
    # nothing after USER runs as root again, and /data is the user's before it is a volume
    assert not any(word == "RUN" for word, _ in steps[users[-1] :])
    run_text = " ".join(rest for word, rest in steps[: users[-1]] if word == "RUN")
    assert "useradd" in run_text and "--uid 10001" in run_text and "chown -R bml:bml /data" in run_text
    volume = next(i for i, (word, _) in enumerate(steps) if word == "VOLUME")
    assert volume > max(i for i, (word, rest) in enumerate(steps) if word == "RUN" and "chown" in rest)
