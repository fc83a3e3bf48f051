from bb2sv.cli import main

main()
