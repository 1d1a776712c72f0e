from redox_tools.errors import run_main
from redox_tools.vm.cli import main

run_main(main)
