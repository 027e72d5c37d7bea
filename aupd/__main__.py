from aupd.cli import main

main()
