using Mae.Cli;

return MaeCli.Run(args, Console.Out, Console.Error);
