from gonogo.cli import entry

entry()
