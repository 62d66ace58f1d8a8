from clarity_tui.cli import main

main()
