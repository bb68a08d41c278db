"""Why an input cannot feed an ONNX session: names, rank, fixed dimensions, dtype.

Used after onnxruntime refused an input (never on the request path's success), by
``Registry.run`` and ``modelgit run``, so the error names the input, what it expects and what it
was given instead of onnxruntime's message.
"""

from __future__ import annotations

from typing import Any

ORT_DTYPES = {
    "tensor(float)": "float32", "tensor(double)": "float64", "tensor(float16)": "float16",
    "tensor(int8)": "int8", "tensor(int16)": "int16", "tensor(int32)": "int32",
    "tensor(int64)": "int64", "tensor(uint8)": "uint8", "tensor(uint16)": "uint16",
    "tensor(uint32)": "uint32", "tensor(uint64)": "uint64", "tensor(bool)": "bool",
}


def expected_shape(shape: Any) -> str:
    """``[None, 10]`` → ``[?, 10]``; symbolic dimensions keep their name."""
    dims = shape if isinstance(shape, list) else []
    return "[" + ", ".join(str(d) if isinstance(d, int) else (d or "?") for d in dims) + "]"


def input_problem(session: Any, inputs: Any, given: str = "the dict given") -> str | None:
    """Why ``inputs`` (one array, or a mapping of input name → array) cannot feed ``session``,
    or None when names, ranks, fixed dimensions and dtypes all fit. For example, a model taking
    ``X`` float ``[?, 10]`` given ``np.zeros((3, 4))``: "input 'X' must have shape [?, 10], got
    [3, 4]"."""
    import numpy as np

    expected = session.get_inputs()
    names = [arg.name for arg in expected]
    if isinstance(inputs, dict):
        missing = [n for n in names if n not in inputs]
        extra = [n for n in inputs if n not in names]
        if missing or extra:
            return (f"the model takes inputs {', '.join(names)}; {given} has "
                    f"{', '.join(str(n) for n in inputs) or 'no arrays'}")
        feed = inputs
    else:
        if len(names) != 1:
            return (f"the model takes {len(names)} inputs ({', '.join(names)}); pass a dict of "
                    "input name → array")
        feed = {names[0]: inputs}
    for arg in expected:
        try:
            array = np.asarray(feed[arg.name])
        except (ValueError, TypeError) as exc:  # ragged lists and other non-arrays
            return f"input '{arg.name}' is not an array: {str(exc).splitlines()[0][:200]}"
        shape = arg.shape if isinstance(arg.shape, list) else []
        dtype = ORT_DTYPES.get(arg.type)
        if len(shape) != array.ndim or any(
            isinstance(d, int) and d != n for d, n in zip(shape, array.shape, strict=False)
        ):
            return f"input '{arg.name}' must have shape {expected_shape(shape)}, got {list(array.shape)}"
        if dtype is not None and array.dtype != np.dtype(dtype):
            return (f"input '{arg.name}' must be {dtype}, got {array.dtype} "
                    f"(convert it: array.astype(numpy.{dtype}))")
    return None
