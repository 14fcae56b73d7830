"""Maintainer and teacher tools; the notebooks never import them.

* `python -m tutorlib.tools.bundle`       rebuild the bundled Fashion-MNIST subset (`make data`)
* `python -m tutorlib.tools.checkpoints`  retrain the course checkpoints (`make checkpoints`)
* `python -m tutorlib.course`             build the write-up, student copies, grading (`tools/course.py`)
"""
