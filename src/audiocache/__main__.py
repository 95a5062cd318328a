from audiocache.cli import main

main()
