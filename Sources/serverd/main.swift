import Glibc

exit(ServerdMain.run(Array(CommandLine.arguments.dropFirst())))
