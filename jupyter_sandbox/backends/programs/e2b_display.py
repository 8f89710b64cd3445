"""Runs INSIDE every Python kernel of a sandbox, once at its start (IPKernelApp.exec_lines).

Adds the two display formats E2B's code interpreter gives and its SDK reads as ``Result.data``
and ``Result.chart``:

- ``e2b/data``: a pandas DataFrame's columns, ``{column: [value, ...]}``, values made JSON
  (timestamps as ISO text, numpy scalars as numbers, NaN as null), for a frame of at most
  100,000 cells;
- ``e2b/chart``: a matplotlib figure's data (its kind, title, axes, scales and elements), made by
  the ``e2b-charts`` package when the image has it (the default image does); without it a figure
  has no chart, only its image.

- a PIL image saved to a file (``image.save("out.png")``) is displayed too, as E2B's does: the
  patch goes in when the code first imports ``PIL.Image``, so a kernel that never does pays nothing.

Both formatters look at ``sys.modules`` first, so an output that is neither pays no import of
pandas or matplotlib. A conversion that fails gives no such format rather than an error: the
figure or table is still shown as usual.

Shipped as source text and run in the user's namespace: it leaves no name behind, and uses only
IPython and the standard library (Python 3.8+).
"""


def _jupyter_sandbox_e2b_display():
    import datetime
    import enum
    import importlib.abc
    import importlib.util
    import math
    import os
    import sys

    from IPython.core.formatters import BaseFormatter
    from IPython.display import display
    from traitlets import ObjectName, Unicode

    # A bigger frame gives no data: its display (the table, shortened by pandas) must stay well
    # under what one message may carry out of the sandbox (frames.OUTPUT_CAP).
    MOST_CELLS = 100_000

    def json_value(value):
        if isinstance(value, dict):
            return {str(k): json_value(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [json_value(v) for v in value]
        if isinstance(value, enum.Enum):
            value = value.value
        if hasattr(value, "item") and type(value).__module__ == "numpy":  # a numpy scalar
            value = value.item()
        if isinstance(value, (datetime.datetime, datetime.date)):  # pandas' Timestamp is a datetime
            return value.isoformat()
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        return str(value)

    class DataFormatter(BaseFormatter):
        format_type = Unicode("e2b/data")
        print_method = ObjectName("_repr_e2b_data_")
        _return_type = (dict,)

        def __call__(self, obj):
            pandas = sys.modules.get("pandas")
            if pandas is None or not isinstance(obj, pandas.DataFrame):
                return super().__call__(obj)
            if obj.size > MOST_CELLS:
                return None
            try:
                return json_value(obj.to_dict(orient="list"))
            except Exception:
                return None

    class ChartFormatter(BaseFormatter):
        format_type = Unicode("e2b/chart")
        print_method = ObjectName("_repr_e2b_chart_")
        _return_type = (dict,)

        def __call__(self, obj):
            figure = sys.modules.get("matplotlib.figure")
            if figure is None or not isinstance(obj, figure.Figure):
                return super().__call__(obj)
            try:
                from e2b_charts import chart_figure_to_chart
            except ImportError:
                return None
            try:
                chart = chart_figure_to_chart(obj)
                # e2b-charts' values may be numpy scalars, which its own JSON mode refuses
                return json_value(chart.model_dump()) if chart is not None else None
            except Exception:
                return None

    def show_saved_images(module):
        original = module.Image.save

        def save(image, fp, *args, **kwargs):
            if isinstance(fp, (str, os.PathLike)):  # a file, not a buffer: the user meant to keep it
                display(image)
            return original(image, fp, *args, **kwargs)

        module.Image.save = save

    class AfterImport(importlib.abc.MetaPathFinder):
        """Runs ``then(module)`` once the module ``name`` is first executed."""

        def __init__(self, name, then):
            self.name, self.then = name, then

        def find_spec(self, fullname, path, target=None):
            if fullname != self.name:
                return None
            sys.meta_path.remove(self)  # once; and the finders after us find the real spec
            spec = importlib.util.find_spec(fullname)
            if spec is None or spec.loader is None:
                return spec
            load, then = spec.loader.exec_module, self.then

            def exec_module(module):
                load(module)
                try:
                    then(module)
                except Exception:
                    pass  # the module works as usual, without the extra

            spec.loader.exec_module = exec_module
            return spec

    shell = get_ipython()  # noqa: F821 (IPython's builtin in the kernel's namespace)
    formatters = shell.display_formatter.formatters
    formatters["e2b/data"] = DataFormatter(parent=shell.display_formatter)
    formatters["e2b/chart"] = ChartFormatter(parent=shell.display_formatter)
    if "PIL.Image" in sys.modules:
        show_saved_images(sys.modules["PIL.Image"])
    else:
        sys.meta_path.insert(0, AfterImport("PIL.Image", show_saved_images))


_jupyter_sandbox_e2b_display()
del _jupyter_sandbox_e2b_display
