"""Build of the C extensions (the /predict body parser and the records JSON splice); the rest is in setup.cfg."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            f"flts_streams.{name}",
            [f"flts_streams/{name.replace('.', '/')}.c"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
        )
        for name in ("serving._native_body", "forecasting._records_json")
    ]
)
