"""`python -m tutorlib.course build | confirm | student | grade | get | lab | test | unit`: the teacher's command.

The tools live in `tutorlib/tools/`, one module per job (build, student, grading, lab, testing, kernels), which
the notebooks never import; this name stays because teachers type it (README; docs/design.md, sections 8-9).
"""
from .tools.course import main

if __name__ == "__main__":
    main()
