"""A task's exception shows its remote traceback in the cell, with the cells' source lines.

Functions defined in a notebook cell are compiled by IPython under a file name of its own
(``/tmp/ipykernel_<pid>/<hash>.py``) whose source only the kernel has: the worker sends
the frames as data and the kernel fills in the lines.
"""

from __future__ import annotations

from _kernel import KernelSession

DEFINE = """\
def parse(text):
    value = int(text)
    return value


def check(text):
    try:
        return parse(text)
    except ValueError as err:
        raise RuntimeError(f"bad input {text!r}") from err
"""


def test_remote_traceback_shows_the_cells_source_lines(ray_kernel: KernelSession) -> None:
    define = ray_kernel.execute(DEFINE, cell_id="define")
    n = define.reply["content"]["execution_count"]  # type: ignore[index]
    run = ray_kernel.run("ray.get(ray.remote(check).remote('x'))", cell_id="run")
    assert run.reply is not None and run.reply["content"]["status"] == "error"
    text = run.error_text
    print(text)
    assert text.startswith("RayTaskError(RuntimeError): check() failed in a worker (pid=")
    assert f"Cell In[{n}], line 2, in parse" in text
    assert "    value = int(text)" in text
    assert "ValueError: invalid literal for int() with base 10: 'x'" in text
    assert "The above exception was the direct cause of the following exception:" in text
    assert f"Cell In[{n}], line 10, in check" in text
    assert '    raise RuntimeError(f"bad input {text!r}") from err' in text
    assert text.rstrip().endswith("RuntimeError: bad input 'x'")
    assert "<dynamic-code>" not in text
    # the local frames (this cell, the runtime's get) are not what the user needs
    assert "jupyter_ray/api.py" not in text


def test_a_nested_tasks_error_shows_both_cells(ray_kernel: KernelSession) -> None:
    inner = ray_kernel.execute(
        "@ray.remote\ndef inner():\n    raise KeyError('deep')", cell_id="inner"
    )
    outer = ray_kernel.execute(
        "@ray.remote\ndef outer():\n    return ray.get(inner.remote())", cell_id="outer"
    )
    run = ray_kernel.run("ray.get(outer.remote())", cell_id="run")
    text = run.error_text
    print(text)
    n_inner = inner.reply["content"]["execution_count"]  # type: ignore[index]
    n_outer = outer.reply["content"]["execution_count"]  # type: ignore[index]
    assert f"Cell In[{n_outer}], line 3, in outer" in text
    assert "    return ray.get(inner.remote())" in text
    assert f"Cell In[{n_inner}], line 3, in inner" in text
    assert "    raise KeyError('deep')" in text
    assert "KeyError: 'deep'" in text


def test_the_error_can_still_be_caught_as_its_own_type(ray_kernel: KernelSession) -> None:
    ray_kernel.execute(DEFINE, cell_id="define")
    run = ray_kernel.execute(
        "try:\n"
        "    ray.get(ray.remote(parse).remote('y'))\n"
        "except ValueError as err:\n"
        "    print(type(err).__name__)\n"
        "    print(str(err))",
        cell_id="catch",
    )
    assert run.stream_text.startswith("RayTaskError(ValueError)\nparse() (pid=")
    assert "    value = int(text)" in run.stream_text  # str() renders with the cells too
