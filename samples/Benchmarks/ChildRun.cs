using System.Diagnostics;

namespace Mae.MLNet.Benchmarks;

/// <summary>This benchmark program again, in a child process (for what is fixed per process: peak memory, malloc's
/// setting): runs it with <paramref name="args"/> and returns its standard output and exit code.</summary>
static class ChildRun
{
    public static (string Output, int ExitCode) Of(IEnumerable<string> args, Action<IDictionary<string, string?>>? environment = null)
    {
        var psi = new ProcessStartInfo(Environment.ProcessPath!) { RedirectStandardOutput = true };
        if (Path.GetFileNameWithoutExtension(Environment.ProcessPath!) == "dotnet") psi.ArgumentList.Add(typeof(ChildRun).Assembly.Location);
        foreach (var a in args) psi.ArgumentList.Add(a);
        environment?.Invoke(psi.Environment);
        using var child = Process.Start(psi)!;
        string output = child.StandardOutput.ReadToEnd();
        child.WaitForExit();
        return (output, child.ExitCode);
    }
}
