namespace Mae.Cli;

/// <summary>A user error the tool reports as one line (no stack trace) with exit code 2.</summary>
public sealed class CliException(string message) : Exception(message);
