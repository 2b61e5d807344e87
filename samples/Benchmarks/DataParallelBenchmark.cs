using System.Diagnostics;
using System.Globalization;
using Mae.MLNet.Model;
using Mae.MLNet.Runtime;
using Mae.MLNet.Training;
using Mae.MLNet.Input;
using Mae.MLNet.Pretraining;
using static TorchSharp.torch;

namespace Mae.MLNet.Benchmarks;

/// <summary>
/// Data-parallel pre-training, N MPI ranks against one process on the same machine: each round starts this program
/// once per configured run — a single process, or <c>mpirun -np N</c> — with the given threads per rank, in
/// alternating order, and reads back the second epoch's images/s and the all-reduce time per step. Same global batch,
/// same steps; the all-reduce time is what a rank spends inside MPI_Allreduce, waiting for a slower rank included.
/// </summary>
public static class DataParallelBenchmark
{
    /// <param name="Runs">(ranks, threads per rank) of each run, e.g. (1, 2), (2, 1), (1, 1).</param>
    public sealed record Options(string Preset, int Batch, int Steps, IReadOnlyList<(int Ranks, int Threads)> Runs, int Rounds, string Precision);
    public sealed record Sample(string Run, double ImagesPerSecond, double AllReduceMsPerStep, double Loss, double AllReduceAloneMs);

    public static List<Sample> Run(Options o, TextWriter log)
    {
        var samples = new List<Sample>();
        for (int round = 0; round < o.Rounds; round++)
            foreach (var (ranks, threads) in round % 2 == 0 ? o.Runs : o.Runs.Reverse())
            {
                var s = Child(o, ranks, threads);
                log.WriteLine($"round {round}: {s.Run} {s.ImagesPerSecond:F1} img/s, all-reduce {s.AllReduceMsPerStep:F2} ms/step");
                samples.Add(s);
            }
        return samples;
    }

    static Sample Child(Options o, int ranks, int threads)
    {
        string self = Environment.ProcessPath!;
        bool viaDotnet = Path.GetFileNameWithoutExtension(self) == "dotnet";
        var psi = new ProcessStartInfo(ranks == 1 ? self : "mpirun") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (ranks > 1)
        {
            foreach (var a in new[] { "-np", ranks.ToString(CultureInfo.InvariantCulture), "--oversubscribe", "--bind-to", "none", self }) psi.ArgumentList.Add(a);
            psi.Environment["OMPI_ALLOW_RUN_AS_ROOT"] = "1";
            psi.Environment["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1";
        }
        if (viaDotnet) psi.ArgumentList.Add(typeof(DataParallelBenchmark).Assembly.Location);
        foreach (var a in new[] { "--bench", "dp-child", "--dp-preset", o.Preset, "--dp-batch", $"{o.Batch}", "--dp-steps", $"{o.Steps}",
                     "--dp-threads", $"{threads}", "--dp-precision", o.Precision })
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi) ?? throw new InvalidOperationException("could not start the child");
        var err = p.StandardError.ReadToEndAsync();
        var lines = p.StandardOutput.ReadToEnd().Split('\n');
        p.WaitForExit();
        var line = lines.FirstOrDefault(l => l.StartsWith("DP ", StringComparison.Ordinal))
            ?? throw new InvalidOperationException($"the {ranks}-rank child printed no result (exit {p.ExitCode}):\n{string.Join('\n', lines)}\n{err.Result}");
        var f = line.Split(' ');
        return new Sample(ranks == 1 ? $"1 process × {threads} thread{(threads > 1 ? "s" : "")}" : $"{ranks} ranks × {threads} thread{(threads > 1 ? "s" : "")}",
            double.Parse(f[1], CultureInfo.InvariantCulture), double.Parse(f[2], CultureInfo.InvariantCulture), double.Parse(f[3], CultureInfo.InvariantCulture), double.Parse(f[4], CultureInfo.InvariantCulture));
    }

    /// <summary>The child: two epochs of <c>steps</c> steps (the first warms up); prints "DP img/s allreduce-ms/step loss" on rank 0.</summary>
    public static void ChildMain(string preset, int batch, int steps, int threads, string precision)
    {
        var collective = MaeCollective.FromEnvironment();
        var config = MaeConfig.Preset(preset);
        var options = new MaePretrainOptions
        {
            BatchSize = batch, Epochs = 2, WarmupEpochs = 1, LearningRate = 1e-3, Seed = 1, Device = MaeDevice.Cpu, Threads = threads,
            Collective = collective, LogEvery = steps, Precision = precision == "bf16" ? MaePrecision.Bf16 : MaePrecision.Fp32,
        };
        using var model = MaePretrainer.CreateModel(config, options);
        using (var g = new Generator(5))
        using (var images = rand(new long[] { (long)batch * steps, config.InChannels, config.ImageSize, config.ImageSize }, generator: g))
        using (var source = MaeImageSource.FromTensor(images))
        {
            TimeSpan firstEpoch = TimeSpan.Zero;
            var progress = new ProgressAction<MaePretrainProgress>(r => { if (r.Epoch == 0 && r.Step == r.StepsPerEpoch - 1) firstEpoch = r.Elapsed; });
            var result = new MaePretrainer(options).Train(model, source, progress);
            double secs = (result.Elapsed - firstEpoch).TotalSeconds;
            double alone = AllReduceAlone(collective, model.parameters().Where(x => x.requires_grad).Sum(x => x.numel()));
            if (collective.Rank == 0)
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"DP {(double)batch * steps / secs:R} {result.AllReduceTime.TotalMilliseconds / result.OptimizerSteps:R} {result.StepLosses[^1]:R} {alone:R}"));
        }
    }

    /// <summary>
    /// The all-reduce overlapped with backward against the one all-reduce after it, in one <c>mpirun -np ranks</c> run:
    /// the engine overlaps steps 0–1, 4–5, 8–9 … and not 2–3, 6–7 … (<c>MaeTrainingOptions.OverlapAt</c>, the same on
    /// every rank), rank 0 times every step (a progress report per step), and the first epoch warms up. Prints one
    /// line: "OVERLAP median-ms-with median-ms-without all-reduce-alone-ms steps-each".
    /// </summary>
    public static void OverlapChildMain(string preset, int batch, int steps, int threads, string precision)
    {
        var collective = MaeCollective.FromEnvironment();
        var config = MaeConfig.Preset(preset);
        static bool Overlaps(long step) => step / 2 % 2 == 0;
        var options = new MaePretrainOptions
        {
            BatchSize = batch, Epochs = 2, WarmupEpochs = 1, LearningRate = 1e-3, Seed = 1, Device = MaeDevice.Cpu, Threads = threads,
            Collective = collective, LogEvery = 1, Precision = precision == "bf16" ? MaePrecision.Bf16 : MaePrecision.Fp32,
            OverlapGroups = 4, OverlapAt = Overlaps,
        };
        using var model = MaePretrainer.CreateModel(config, options);
        using var g = new Generator(5);
        using var images = rand(new long[] { (long)batch * steps, config.InChannels, config.ImageSize, config.ImageSize }, generator: g);
        using var source = MaeImageSource.FromTensor(images);
        var with = new List<double>();
        var without = new List<double>();
        TimeSpan last = TimeSpan.Zero;
        var progress = new ProgressAction<MaePretrainProgress>(r =>
        {
            if (r.EndOfEpoch) return;
            double ms = (r.Elapsed - last).TotalMilliseconds;
            last = r.Elapsed;
            if (r.Epoch == 0) return;   // warm-up
            (Overlaps(r.GlobalStep - 1) ? with : without).Add(ms);
        });
        new MaePretrainer(options).Train(model, source, progress);
        double alone = AllReduceAlone(collective, model.parameters().Where(x => x.requires_grad).Sum(x => x.numel()));
        static double Median(List<double> v) { v.Sort(); return v.Count == 0 ? double.NaN : v.Count % 2 == 1 ? v[v.Count / 2] : (v[v.Count / 2 - 1] + v[v.Count / 2]) / 2; }
        if (collective.Rank == 0)
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"OVERLAP {Median(with):R} {Median(without):R} {alone:R} {Math.Min(with.Count, without.Count)}"));
    }

    /// <summary>Runs <see cref="OverlapChildMain"/> under <c>mpirun -np ranks</c> and returns its line's numbers.</summary>
    public static (double With, double Without, double Alone, int Steps) Overlap(string preset, int batch, int steps, int ranks, int threads, string precision)
    {
        string self = Environment.ProcessPath!;
        var psi = new ProcessStartInfo("mpirun") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "-np", ranks.ToString(CultureInfo.InvariantCulture), "--oversubscribe", "--bind-to", "none", self }) psi.ArgumentList.Add(a);
        psi.Environment["OMPI_ALLOW_RUN_AS_ROOT"] = "1";
        psi.Environment["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1";
        if (Path.GetFileNameWithoutExtension(self) == "dotnet") psi.ArgumentList.Add(typeof(DataParallelBenchmark).Assembly.Location);
        foreach (var a in new[] { "--bench", "overlap-child", "--dp-preset", preset, "--dp-batch", $"{batch}", "--dp-steps", $"{steps}", "--dp-threads", $"{threads}", "--dp-precision", precision })
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi) ?? throw new InvalidOperationException("could not start mpirun");
        var err = p.StandardError.ReadToEndAsync();
        var lines = p.StandardOutput.ReadToEnd().Split('\n');
        p.WaitForExit();
        var line = lines.FirstOrDefault(l => l.StartsWith("OVERLAP ", StringComparison.Ordinal))
            ?? throw new InvalidOperationException($"the overlap run printed no result (exit {p.ExitCode}):\n{string.Join('\n', lines)}\n{err.Result}");
        var f = line.Split(' ');
        return (double.Parse(f[1], CultureInfo.InvariantCulture), double.Parse(f[2], CultureInfo.InvariantCulture), double.Parse(f[3], CultureInfo.InvariantCulture), int.Parse(f[4], CultureInfo.InvariantCulture));
    }

    /// <summary>ms per all-reduce of a gradient-sized buffer with every rank already waiting (a barrier first):
    /// the transfer and reduction alone, without the wait for a slower rank that the in-training figure includes.</summary>
    static double AllReduceAlone(IMaeCollective collective, long count)
    {
        if (collective.WorldSize == 1) return 0;
        using var buffer = ones(count);
        collective.Barrier();
        collective.AllReduceMean(buffer);
        double total = 0;
        for (int i = 0; i < 10; i++)
        {
            collective.Barrier();
            var clock = Stopwatch.StartNew();
            collective.AllReduceMean(buffer);
            total += clock.Elapsed.TotalMilliseconds;
        }
        return total / 10;
    }

}
