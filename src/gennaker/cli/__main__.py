"""python -m gennaker.cli"""

from gennaker.cli import main

main()
