using System.Diagnostics;
using Mae.MLNet.TrainHost;

namespace Mae.MLNet.Tests.Distributed;

/// <summary>Runs the training host's data-parallel mode as one process or as an <c>mpirun -np N</c> job, and reads
/// back what rank 0 wrote (losses, parameter names) and every rank's weights.</summary>
internal static class MpiJob
{
    static string HostDll => Path.Combine(AppContext.BaseDirectory, "Mae.MLNet.TrainHost.dll");

    static string Dotnet
    {
        get
        {
            var dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
            return string.IsNullOrEmpty(dotnet) || !File.Exists(dotnet) ? "dotnet" : dotnet;
        }
    }

    /// <summary>mpirun on PATH; fails the test with what to install when it is missing.</summary>
    public static string MpiRun
    {
        get
        {
            foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
            {
                var path = Path.Combine(dir, "mpirun");
                if (File.Exists(path)) return path;
            }
            Assert.Fail("mpirun was not found on PATH: the data-parallel tests need Open MPI. Install it (Debian/Ubuntu: apt-get install openmpi-bin).");
            return "";
        }
    }

    public sealed record Result(int ExitCode, string Stdout, string Stderr, TimeSpan Elapsed);

    /// <summary>Runs <c>TrainHost MODE args…</c> (mode dp: data-parallel training); ranks ≥ 1 under mpirun
    /// (--oversubscribe: CI may have fewer cores), 0: one plain process.</summary>
    public static Result Run(int ranks, IEnumerable<string> args, int timeoutMs = 240_000, IDictionary<string, string>? env = null, string mode = "dp")
    {
        Assert.IsTrue(File.Exists(HostDll), $"the training host was not built next to the tests: {HostDll}");
        var psi = new ProcessStartInfo(ranks == 0 ? Dotnet : MpiRun)
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        if (ranks > 0)
        {
            foreach (var a in new[] { "-np", ranks.ToString(System.Globalization.CultureInfo.InvariantCulture), "--oversubscribe", "--bind-to", "none" })
                psi.ArgumentList.Add(a);
            // CI containers run as root, which mpirun refuses without these.
            psi.Environment["OMPI_ALLOW_RUN_AS_ROOT"] = "1";
            psi.Environment["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1";
            if (env is not null) foreach (var k in env.Keys) { psi.ArgumentList.Add("-x"); psi.ArgumentList.Add(k); }
            psi.ArgumentList.Add(Dotnet);
        }
        if (env is not null) foreach (var (k, v) in env) psi.Environment[k] = v;
        psi.ArgumentList.Add(HostDll);
        psi.ArgumentList.Add(mode);
        foreach (var a in args) psi.ArgumentList.Add(a);
        var clock = Stopwatch.StartNew();
        using var p = Process.Start(psi) ?? throw new InvalidOperationException("could not start the job");
        var err = p.StandardError.ReadToEndAsync();
        var stdout = p.StandardOutput.ReadToEndAsync();
        if (!p.WaitForExit(timeoutMs))
        {
            p.Kill(entireProcessTree: true);
            Assert.Fail($"the job did not end within {timeoutMs / 1000} s: {string.Join(' ', psi.ArgumentList)}");
        }
        p.WaitForExit();
        return new Result(p.ExitCode, stdout.Result, err.Result, clock.Elapsed);
    }

    public static Result RunOk(int ranks, params string[] args)
    {
        var r = Run(ranks, args);
        Assert.AreEqual(0, r.ExitCode, $"job failed ({string.Join(' ', args)}):\n{r.Stdout}\n{r.Stderr}");
        return r;
    }

    public static float[] Losses(string output) => TinyRun.ParseLosses(File.ReadAllText(output));

    public static float[] Weights(string output, int rank = 0)
    {
        var bytes = File.ReadAllBytes($"{output}.weights.{rank}");
        var w = new float[bytes.Length / 4];
        Buffer.BlockCopy(bytes, 0, w, 0, bytes.Length);
        return w;
    }

    /// <summary>(name, offset, count) of each parameter in the weights files.</summary>
    public static List<(string Name, int Offset, int Count)> Names(string output)
    {
        var list = new List<(string, int, int)>();
        int offset = 0;
        foreach (var line in File.ReadAllLines($"{output}.names"))
        {
            var parts = line.Split(' ');
            int n = int.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture);
            list.Add((parts[0], offset, n));
            offset += n;
        }
        return list;
    }
}
