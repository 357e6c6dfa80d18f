"""python -m gennaker"""

from gennaker.cli import main

main()
