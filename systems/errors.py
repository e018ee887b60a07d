"""The root of the project's exception family.

It lives here, at the bottom of the import graph, so that the catalog can raise
it without importing the engine; `workbench.errors` re-exports it and adds the
specific subclasses.
"""


class WorkbenchError(Exception):
    """An error the user can cause and fix; the message names both."""
