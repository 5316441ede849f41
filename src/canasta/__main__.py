from canasta.entrypoints.cli import main

main()
