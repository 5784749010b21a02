"""The instructor's commands, kept out of the package students install (``course_utils``).

    python -m course_tools run | clean | hygiene | homework | check | grade | html | set-repo-url | sync

``make notebooks``, ``make homework``, ``make grade`` and ``make html`` call them from the
repository root; their dependencies (papermill, nbformat, nbconvert, nbgrader) come with the
``instructor`` and ``dev`` extras. See :mod:`course_tools.cli` for what each command does.
"""
