from minitoolai.cli import main

main()
