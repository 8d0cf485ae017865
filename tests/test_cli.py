"""The ``erogaki`` command line, run as a real process against a real Redis."""

from __future__ import annotations

import asyncio
import io
import os
import re
import sys
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from PIL import Image

from erogaki_common import keys
from erogaki_common.errors import ErrorName, ProcessingError
from erogaki_common.keys import Queue
from erogaki_common.worker import Done, Job, Outcome
from tests.test_protocol import running_worker

ROOT = Path(__file__).resolve().parent.parent


async def erogaki(redis_url: str, *args: str, timeout: float = 30) -> tuple[int, str, str]:
    env = {**os.environ, "REDIS_URL": redis_url}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "erogaki", *args,
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture
def png_file(tmp_path: Path) -> Path:
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 40, 90)).save(buf, "PNG")
    path = tmp_path / "picture.png"
    path.write_bytes(buf.getvalue())
    return path


async def test_decensor_without_workers_ends_at_the_deadline(
    redis_url: str, png_file: Path, aredis: aioredis.Redis
) -> None:
    code, _, err = await erogaki(redis_url, "decensor", "bar", str(png_file), "--timeout", "1")
    assert code == 4
    assert "timed out after 1 s" in err and "No worker took the bar job" in err
    # The abandoned job is taken back out: no queue entry, no input image.
    assert await aredis.keys("censored-images:*") == []


async def test_decensor_writes_the_result(redis_url: str, png_file: Path) -> None:
    async with running_worker(redis_url, [Queue.HENTAI_MOSAIC]):
        code, out, _ = await erogaki(redis_url, "decensor", "mosaic", str(png_file))
    assert code == 0, out
    written = png_file.with_name("picture.decensored.png")
    assert written.read_bytes() == b"done:" + png_file.read_bytes()
    assert f"wrote {written}" in out


async def test_masked_goes_straight_to_deepcreampy(redis_url: str, png_file: Path) -> None:
    target = png_file.with_name("out.png")
    async with running_worker(redis_url, [Queue.DEEPCREAMPY_BAR]):
        code, _, err = await erogaki(
            redis_url, "decensor", "bar", "--masked", str(png_file), "-o", str(target)
        )
    assert code == 0, err
    assert target.read_bytes().startswith(b"done:")


async def test_worker_error_is_printed_readably(redis_url: str, png_file: Path) -> None:
    async def refuse(job: Job) -> Outcome:
        raise ProcessingError("No bars or mosaic were found.", ErrorName.NO_CENSORED_REGIONS_FOUND)

    async with running_worker(redis_url, [Queue.HENTAI_BAR], refuse, instance="gpu-3"):
        code, _, err = await erogaki(redis_url, "decensor", "bar", str(png_file))
    assert code == 1
    assert "NoCensoredRegionsFound: No bars or mosaic were found." in err
    assert "instance gpu-3" in err
    assert "Traceback" not in err


async def test_bad_input_is_refused_before_queueing(
    redis_url: str, tmp_path: Path, aredis: aioredis.Redis
) -> None:
    page = tmp_path / "page.png"
    page.write_bytes(b"<html>not an image</html>")
    code, _, err = await erogaki(redis_url, "decensor", "bar", str(page))
    assert code == 2 and "not a PNG, JPEG, WebP, GIF or AVIF" in err
    code, _, err = await erogaki(redis_url, "decensor", "bar", str(tmp_path / "missing.png"))
    assert code == 2 and "cannot read" in err
    assert await aredis.llen(Queue.HENTAI_BAR) == 0


async def test_redis_down_exits_3(png_file: Path) -> None:
    from erogaki_common.embedded_redis import free_port

    url = f"redis://127.0.0.1:{free_port()}/0"
    code, _, err = await erogaki(url, "status")
    assert code == 3 and "unreachable" in err


async def test_bad_setting_names_the_variable(redis_url: str, png_file: Path) -> None:
    code, _, err = await erogaki("redis://127.0.0.1/notanumber", "status")
    assert code == 2 and "REDIS_URL" in err


async def test_status_lists_queues_workers_and_the_oldest_job(
    redis_url: str, aredis: aioredis.Redis
) -> None:
    await aredis.rpush(Queue.HENTAI_MOSAIC, "old1", "new2")
    await aredis.hset(keys.job_key("old1"), "submitted", "1")
    async with running_worker(redis_url, [Queue.DEEPCREAMPY_BAR], instance="box-1"):
        code, out, _ = await erogaki(redis_url, "status")
    assert code == 0
    assert re.search(r"censored-images:hent-ai:mosaic +2 waiting", out)
    assert "workers: 1 alive" in out and "box-1" in out
    assert "oldest waiting job: old1 on censored-images:hent-ai:mosaic" in out


@pytest.mark.parametrize("command", [[], ["decensor"], ["status"]])
async def test_help(command: list[str]) -> None:
    code, out, _ = await erogaki("redis://127.0.0.1:1/0", *command, "--help")
    assert code == 0 and "usage: erogaki" in out


async def test_health_finds_a_worker_on_this_host(redis_url: str) -> None:
    code, _, err = await erogaki(redis_url, "health", "worker")
    assert code == 1 and "no live worker" in err
    async with running_worker(redis_url, [Queue.DEEPCREAMPY_BAR]):
        code, _, _ = await erogaki(redis_url, "health", "worker")
    assert code == 0


# --- -o mistakes are caught before the work is done -------------------------------


@pytest.mark.parametrize(
    ("target", "said"),
    [
        ("existing-dir", "is a directory"),
        ("no-such-dir/out.png", "does not exist"),
        ("a-file/out.png", "is not a directory"),
    ],
)
async def test_a_bad_output_path_is_refused_before_submitting(
    redis_url: str, png_file: Path, aredis: aioredis.Redis, target: str, said: str
) -> None:
    (png_file.parent / "existing-dir").mkdir()
    (png_file.parent / "a-file").write_bytes(b"x")
    # No worker runs: a job queued anyway would end at the deadline, not at once.
    code, out, err = await erogaki(
        redis_url, "decensor", "mosaic", str(png_file), "-o", str(png_file.parent / target),
        "--timeout", "3",
    )  # fmt: skip
    assert code == 2, err
    assert said in err and "Traceback" not in err + out
    assert await aredis.keys("censored-images:*") == []


async def test_a_result_that_cannot_be_written_is_saved_beside_the_input(
    redis_url: str, png_file: Path
) -> None:
    target_dir = png_file.parent / "gone-soon"
    target_dir.mkdir()

    async def remove_target_dir(job: Job) -> Outcome:
        # The output directory vanishes while the job runs (a USB stick pulled).
        target_dir.rmdir()
        return Done(b"done:" + job.data)

    async with running_worker(redis_url, [Queue.HENTAI_MOSAIC], remove_target_dir):
        code, out, err = await erogaki(
            redis_url, "decensor", "mosaic", str(png_file), "-o", str(target_dir / "out.png")
        )
    saved = png_file.with_name("picture.decensored.png")
    assert code == 1, err
    assert "Traceback" not in err + out
    assert f"saved the result as {saved}" in err
    assert saved.read_bytes() == b"done:" + png_file.read_bytes()
