from erogaki.cli import main

main()
