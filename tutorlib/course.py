"""`python -m tutorlib.course build | confirm | student | grade | get | test`: the teacher's command (README; docs/design.md, sections 8-9).

The code lives in `tutorlib/tools/course.py` with the other tools the notebooks never import; this
name stays because teachers type it.
"""
import sys

from .tools import course as _course

if __name__ == "__main__":
    _course.main()
else:  # `import tutorlib.course` gives the tool module itself, private helpers included
    sys.modules[__name__] = _course
