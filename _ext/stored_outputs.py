"""Build a notebook from its stored outputs when it has been run.

Jupyter Book's ``auto`` execution mode runs a notebook again whenever one
of its code cells has no output. Most notebooks have such a cell (one of
imports prints nothing), so every build would run every chapter. This
extension marks a notebook whose code cells all carry an execution count,
that is one that was run before it was committed, as not to be executed,
so the build shows its stored outputs. A notebook that was never run is
still executed by the build. ``make test`` runs every notebook anyway.

A notebook can still choose for itself: an ``execution_mode`` already
set in its ``mystnb`` metadata is left as it is.
"""

import json


def _is_run(notebook):
    """Whether every non-empty code cell of the notebook was executed."""
    cells = [
        cell for cell in notebook.get("cells", [])
        if cell.get("cell_type") == "code"
        and "".join(cell.get("source", "")).strip()
    ]
    return all(cell.get("execution_count") is not None for cell in cells)


def _keep_stored_outputs(app, docname, source):
    if not str(app.env.doc2path(docname)).endswith(".ipynb"):
        return
    try:
        notebook = json.loads(source[0])
    except ValueError:
        return  # not JSON; leave it to the notebook reader to complain
    if not _is_run(notebook):
        return
    metadata = notebook.setdefault("metadata", {})
    metadata.setdefault("mystnb", {}).setdefault("execution_mode", "off")
    source[0] = json.dumps(notebook)


def setup(app):
    app.connect("source-read", _keep_stored_outputs)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
