using System.Diagnostics;
using Mae.MLNet.TrainHost;

namespace Mae.MLNet.Tests.Training.Distributed;

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
    public static Result Run(int ranks, IEnumerable<string> args, int timeoutMs = 240_000, IDictionary<string, string>? env = null, string mode = "dp",
        IEnumerable<string>? wrapper = null)
    {
        Assert.IsTrue(File.Exists(HostDll), $"the training host was not built next to the tests: {HostDll}");
        return Start(ranks, new[] { HostDll, mode }.Concat(args), env, wrapper).Wait(timeoutMs);
    }

    /// <summary>The <c>mae</c> command line (mae.dll, built next to the tests) as one process or under mpirun.</summary>
    public static Running StartCli(int ranks, IEnumerable<string> args, IDictionary<string, string>? env = null, IEnumerable<string>? wrapper = null)
        => Start(ranks, new[] { Path.Combine(AppContext.BaseDirectory, "mae.dll") }.Concat(args), env, wrapper);

    /// <summary>Starts <c>dotnet DLL args…</c>, under <c>mpirun -np ranks</c> when ranks ≥ 1; <paramref name="wrapper"/>
    /// (a command that ends by running its arguments) goes between mpirun and dotnet, or before dotnet alone.</summary>
    public static Running Start(int ranks, IEnumerable<string> dllAndArgs, IDictionary<string, string>? env = null, IEnumerable<string>? wrapper = null)
    {
        var around = wrapper?.ToList() ?? [];
        var psi = new ProcessStartInfo(ranks > 0 ? MpiRun : around.Count > 0 ? around[0] : Dotnet)
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        if (ranks == 0 && around.Count > 0)
        {
            foreach (var w in around.Skip(1)) psi.ArgumentList.Add(w);
            psi.ArgumentList.Add(Dotnet);
        }
        if (ranks > 0)
        {
            foreach (var a in new[] { "-np", ranks.ToString(System.Globalization.CultureInfo.InvariantCulture), "--oversubscribe", "--bind-to", "none" })
                psi.ArgumentList.Add(a);
            // CI containers run as root, which mpirun refuses without these.
            psi.Environment["OMPI_ALLOW_RUN_AS_ROOT"] = "1";
            psi.Environment["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1";
            if (env is not null) foreach (var k in env.Keys) { psi.ArgumentList.Add("-x"); psi.ArgumentList.Add(k); }
            foreach (var w in around) psi.ArgumentList.Add(w);
            psi.ArgumentList.Add(Dotnet);
        }
        if (env is not null) foreach (var (k, v) in env) psi.Environment[k] = v;
        foreach (var a in dllAndArgs) psi.ArgumentList.Add(a);
        return new Running(psi);
    }

    /// <summary>A started job: its output is read as it comes (so a full pipe never blocks it).</summary>
    public sealed class Running
    {
        readonly ProcessStartInfo psi;
        readonly Stopwatch clock = Stopwatch.StartNew();
        readonly System.Text.StringBuilder stdout = new(), stderr = new();
        readonly SemaphoreSlim changed = new(0);   // released for every line read and when the job ends
        public Process Process { get; }

        public Running(ProcessStartInfo psi)
        {
            this.psi = psi;
            Process = new Process { StartInfo = psi, EnableRaisingEvents = true };
            Process.Exited += (_, _) => changed.Release();
            Process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (stdout) stdout.AppendLine(e.Data); changed.Release(); };
            Process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (stderr) stderr.AppendLine(e.Data); changed.Release(); };
            if (!Process.Start()) throw new InvalidOperationException("could not start the job");
            Process.BeginOutputReadLine();
            Process.BeginErrorReadLine();
        }

        public string Stdout { get { lock (stdout) return stdout.ToString(); } }

        public string Stderr { get { lock (stderr) return stderr.ToString(); } }

        /// <summary>Waits until the job's standard error holds <paramref name="text"/> (true) or the job has ended without
        /// it (false), woken by each line it writes; the timeout only bounds a job that hangs.</summary>
        public bool WaitForError(string text, int timeoutMs)
        {
            var deadline = Stopwatch.StartNew();
            while (true)
            {
                if (Stderr.Contains(text, StringComparison.Ordinal)) return true;
                if (Process.HasExited) return Stderr.Contains(text, StringComparison.Ordinal);
                long left = timeoutMs - deadline.ElapsedMilliseconds;
                if (left <= 0 || !changed.Wait((int)left))
                    Assert.Fail($"the job wrote no '{text}' within {timeoutMs / 1000} s: {string.Join(' ', psi.ArgumentList)}\n{Stdout}\n{Stderr}");
            }
        }

        public Result Wait(int timeoutMs)
        {
            if (!Process.WaitForExit(timeoutMs))
            {
                Process.Kill(entireProcessTree: true);
                Assert.Fail($"the job did not end within {timeoutMs / 1000} s: {string.Join(' ', psi.ArgumentList)}\n{Stdout}\n{stderr}");
            }
            Process.WaitForExit();
            lock (stderr) return new Result(Process.ExitCode, Stdout, stderr.ToString(), clock.Elapsed);
        }

        /// <summary>The process ids of the job's ranks: mpirun's children whose environment names their MPI rank.</summary>
        public Dictionary<int, int> RankPids()
        {
            var pids = new Dictionary<int, int>();
            foreach (var task in Directory.GetDirectories($"/proc/{Process.Id}/task"))
                foreach (var child in File.ReadAllText(Path.Combine(task, "children")).Split(' ', StringSplitOptions.RemoveEmptyEntries))
                {
                    string environ;
                    try { environ = File.ReadAllText($"/proc/{child}/environ"); }
                    catch (IOException) { continue; }
                    foreach (var v in environ.Split('\0'))
                        if (v.StartsWith("OMPI_COMM_WORLD_RANK=", StringComparison.Ordinal))
                            pids[int.Parse(v["OMPI_COMM_WORLD_RANK=".Length..], System.Globalization.CultureInfo.InvariantCulture)] = int.Parse(child, System.Globalization.CultureInfo.InvariantCulture);
                }
            return pids;
        }
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
