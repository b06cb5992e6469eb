"""The device test's target choice and skip reasons, here where TensorRT is absent."""

from __future__ import annotations

import pytest

from edge_iqa.export.targets import load_target
from edge_iqa.runtime.tensorrt.versions import target_for


@pytest.mark.parametrize(("installed", "target"), [("10.3.0.30", "jetson"), ("10.14.1.48", "desktop-gpu-10"),
                                                    ("11.0.0.114", "desktop-gpu"), ("11.4.0.106", "desktop-gpu")])
def test_device_test_exports_the_target_of_the_installed_tensorrt(installed: str, target: str) -> None:
    assert target_for(installed) == target
    assert load_target(target).tensorrt.tensorrt_range.contains(installed)


def test_device_test_is_skipped_here_because_tensorrt_is_absent() -> None:
    from tests.test_tensorrt_device import _target_for_installed_tensorrt

    try:
        import tensorrt  # noqa: F401
    except ImportError:
        with pytest.raises(pytest.skip.Exception, match="TensorRT is not installed"):
            _target_for_installed_tensorrt()
    else:
        pytest.skip("TensorRT is importable here: tests/test_tensorrt_device.py runs for real")
