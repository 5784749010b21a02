"""The instructor's commands, kept out of the package students install (``course_utils``).

    python -m course_tools run | clean | hygiene | homework | check | grade | html | set-repo-url | sync

``make notebooks``, ``make homework``, ``make grade`` and ``make html`` call them from the
repository root; their dependencies (papermill, nbformat, nbconvert, nbgrader) come with the
``instructor`` and ``dev`` extras. One module per command, :mod:`course_tools.cli` the command
line:

* :mod:`~course_tools.run`: ``run`` executes the notebooks in place (papermill) and cleans them
* :mod:`~course_tools.clean`: ``clean`` and ``hygiene``, what a committed notebook may carry
* :mod:`~course_tools.homework`: ``homework``, the student versions; what an exercise is
* :mod:`~course_tools.grade`: ``check`` and ``grade`` run and judge students' submissions
* :mod:`~course_tools.html`: ``html`` pages of the executed notebooks
* :mod:`~course_tools.links`: ``set-repo-url`` and ``sync``, the repository URL in pyproject.toml
  and the badges, setup cells and README links made from it

and what they share: :mod:`~course_tools.notebooks` (names, tags, reading and writing
notebooks) and :mod:`~course_tools.kernel` (the kernel they execute notebooks in).
"""
