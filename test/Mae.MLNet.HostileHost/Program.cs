using System.Diagnostics;
using System.Globalization;
using Mae.MLNet.Tests.Interop;

// Mae.MLNet.HostileHost --fixtures <Fixtures/Interop> [--attack <name>] [--cap-mb 6000] [--time-s 60] [--only <prefix,…>]
// Without --attack: every attack of HostileFiles in its own fresh process, then a markdown table.
// With --attack: makes that file, loads it, prints one tab-separated line: name, outcome, exception type, peak RSS
// growth (MiB), managed allocation (MiB), milliseconds, message. A watchdog stops the process when its resident set
// grows by more than the cap (the code before the hardening allocates without bound for some files), or when it has
// not finished after --time-s seconds (a reader blocked on a FIFO never would).
var options = new Dictionary<string, string>();
for (int i = 0; i + 1 < args.Length; i += 2) options[args[i].TrimStart('-')] = args[i + 1];
if (!options.TryGetValue("fixtures", out var fixtures))
{
    Console.Error.WriteLine("usage: Mae.MLNet.HostileHost --fixtures <test/Mae.MLNet.Tests/Fixtures/Interop> [--attack <name>] [--cap-mb 6000]");
    return 2;
}
long capMb = options.TryGetValue("cap-mb", out var c) ? long.Parse(c, CultureInfo.InvariantCulture) : 6000;
int timeS = options.TryGetValue("time-s", out var ts) ? int.Parse(ts, CultureInfo.InvariantCulture) : 60;
#if MAE_BEFORE_HARDENING
const string build = "before (MAE_BEFORE_HARDENING)";
#else
const string build = "after";
#endif

if (options.TryGetValue("attack", out var name))
{
    var attack = HostileFiles.Get(name);
    string dir = Path.Combine(Path.GetTempPath(), $"mae-hostile-host-{Environment.ProcessId}");
    try
    {
        string path = HostileFiles.Make(attack, fixtures, dir);
        using (TorchSharp.torch.zeros(1)) { }      // libtorch's own code pages are not the file's doing
        long baseline = PeakMemory.Rss;
        var stop = new CancellationTokenSource();
        var clock = Stopwatch.StartNew();
        var watchdog = new Thread(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                long grown = PeakMemory.Rss - baseline;
                if (grown > capMb << 20)
                {
                    Console.WriteLine(string.Join('\t', attack.Name, "stopped at cap", "-", (grown / 1048576.0).ToString("F0", CultureInfo.InvariantCulture),
                        "-", clock.ElapsedMilliseconds.ToString(CultureInfo.InvariantCulture), $"resident set grew past the {capMb} MiB cap while loading"));
                    Console.Out.Flush();
                    Environment.Exit(3);
                }
                if (clock.Elapsed.TotalSeconds > timeS)
                {
                    Console.WriteLine(string.Join('\t', attack.Name, $"hung (stopped after {timeS} s)", "-", (grown / 1048576.0).ToString("F0", CultureInfo.InvariantCulture),
                        "-", clock.ElapsedMilliseconds.ToString(CultureInfo.InvariantCulture), "the load had not returned (blocked)"));
                    Console.Out.Flush();
                    Environment.Exit(4);
                }
                Thread.Sleep(5);
            }
        }) { IsBackground = true };
        watchdog.Start();
        var r = PeakMemory.Measure(() => HostileFiles.Load(attack.Load, path));
        stop.Cancel();
        string type = r.Error?.GetType().Name ?? "-";
        string outcome = r.Error is null ? "loaded" : type is "MaeModelFileException" or "MaeTrainingCheckpointException" or "MaeImageFileException" ? "refused" : "foreign exception";
        string message = (r.Error?.Message ?? "no error").ReplaceLineEndings(" ");
        Console.WriteLine(string.Join('\t', attack.Name, outcome, type, r.PeakMiB.ToString("F1", CultureInfo.InvariantCulture),
            r.ManagedMiB.ToString("F1", CultureInfo.InvariantCulture), r.Elapsed.TotalMilliseconds.ToString("F0", CultureInfo.InvariantCulture),
            message.Length > 220 ? message[..220] + "…" : message));
        return 0;
    }
    finally { if (Directory.Exists(dir)) Directory.Delete(dir, true); }
}

Console.WriteLine($"Hostile files, {build} build, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, {Environment.ProcessorCount} cores, cap {capMb} MiB");
Console.WriteLine();
Console.WriteLine("| attack | class | outcome | exception | peak RSS growth (MiB) | managed alloc (MiB) | ms |");
Console.WriteLine("| --- | --- | --- | --- | ---: | ---: | ---: |");
var messages = new List<string>();
var only = options.TryGetValue("only", out var o) ? o.Split(',') : null;
foreach (var attack in HostileFiles.All)
{
    if (only is not null && !only.Any(prefix => attack.Name.StartsWith(prefix, StringComparison.Ordinal))) continue;
    var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
    foreach (var a in new[] { typeof(HostileFiles).Assembly.Location, "--fixtures", fixtures, "--attack", attack.Name, "--cap-mb", capMb.ToString(CultureInfo.InvariantCulture), "--time-s", timeS.ToString(CultureInfo.InvariantCulture) })
        psi.ArgumentList.Add(a);
    using var p = Process.Start(psi)!;
    string output = p.StandardOutput.ReadToEnd();
    string error = p.StandardError.ReadToEnd();
    p.WaitForExit();
    var line = output.Split('\n', StringSplitOptions.RemoveEmptyEntries).LastOrDefault(l => l.StartsWith(attack.Name + "\t", StringComparison.Ordinal));
    if (line is null)
    {
        Console.WriteLine($"| {attack.Name} | {attack.Class} | crashed (exit {p.ExitCode}) | - | - | - | - |");
        messages.Add($"{attack.Name}: exit {p.ExitCode}: {error.ReplaceLineEndings(" ")[..Math.Min(300, error.Length)]}");
        continue;
    }
    var f = line.Split('\t');
    Console.WriteLine($"| {f[0]} | {attack.Class} | {f[1]} | {f[2]} | {f[3]} | {f[4]} | {f[5]} |");
    messages.Add($"{f[0]}: {f[6]}");
}
Console.WriteLine();
foreach (var m in messages) Console.WriteLine($"- {m}");
return 0;
