using System.Globalization;
using Mae.MLNet.Input;
using Mae.MLNet.Model;
using Mae.MLNet.Pretraining;
using Mae.MLNet.Runtime;
using static TorchSharp.torch;

namespace Mae.MLNet.Benchmarks;

/// <summary>
/// Pre-training under two process-wide settings, each run a fresh child process, the two alternating within each round
/// (their order too). <c>malloc</c>: the library's malloc setting (Runtime/GlibcMallocPolicy: freed memory kept up to
/// glibc's 32 MiB mmap ceiling) against glibc's own defaults (MAE_MALLOC_TUNING=0), fixed at start-up. <c>gc-region</c>:
/// the library's steps as they are against each step inside a <c>GC.TryStartNoGCRegion(256 MiB)</c>, what the engine did
/// until 2026-12-06 (a full blocking collection per step; the runtime kept the regions' memory). A child runs
/// MaePretrainer for a few epochs, on random images in memory or on an image folder, and reports the median img/s of its
/// epochs after the first, the minor page faults per image over those epochs, gen-2 collections per step, its peak
/// resident set and the GC's committed memory at the end.
/// </summary>
public static class AllocatorBenchmark
{
    public sealed record Options(IReadOnlyList<string> Workloads, int Rounds, int Images, int Epochs, string? Folder, string Compare = "malloc");

    sealed record Sample(double ImagesPerSecond, double PeakMiB, double FaultsPerImage, double Gen2PerStep, double CommittedMiB, string Setting);

    /// <summary>Set in a child: enter a GC-free region per step as the engine did before 2026-12-06.</summary>
    const string RegionVariable = "MAE_BENCH_GC_REGION";
    const long RegionBudget = 256L << 20;   // the engine's former NoGcScope.TrainingBudget

    /// <summary>Per comparison: the library as it is first, then the alternative, each with its environment switch.</summary>
    static (string Name, string? Variable, string? Value)[] SettingsOf(string compare) => compare switch
    {
        "malloc" => [("library (default)", null, null), ("glibc defaults", GlibcMallocPolicy.OptOutVariable, "0")],
        "gc-region" => [("no region (library)", null, null), ("GC-free region per step (before)", RegionVariable, "1")],
        _ => throw new ArgumentException($"--alloc-compare is malloc or gc-region; got '{compare}'."),
    };

    public static void Run(Options o, TextWriter log)
    {
        var settings = SettingsOf(o.Compare);
        string a = settings[0].Name, b = settings[1].Name;
        Console.WriteLine($"## Pre-training, {a} vs {b} ({(o.Folder is null ? $"{o.Images} random images in memory" : $"the image folder {o.Folder}")}, {o.Epochs} epochs per child, {o.Rounds} rounds alternating)");
        Console.WriteLine();
        Console.WriteLine($"`dotnet run -c Release --project samples/Benchmarks -- --bench allocator --alloc-compare {o.Compare} --alloc-workloads {string.Join(',', o.Workloads)} " +
                          $"--alloc-rounds {o.Rounds} --alloc-epochs {o.Epochs}" + (o.Folder is null ? $" --alloc-images {o.Images}`" : $" --alloc-folder {o.Folder}`"));
        Console.WriteLine();
        Console.WriteLine("A workload is preset:precision:batch. img/s: median over the epochs after the first, then over the rounds; ratio: per round, median; page faults: minor faults per image over those epochs; " +
                          "gen-2: collections per step over the whole run; peak RSS: VmHWM of the child; GC committed: the runtime's committed memory at the end.");
        Console.WriteLine();
        Console.WriteLine($"| workload | img/s, {a} | img/s, {b} | ratio | page faults / image | | gen-2 / step | | peak RSS MiB | | GC committed MiB | |");
        Console.WriteLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var workload in o.Workloads)
        {
            var samples = settings.ToDictionary(s => s.Name, _ => new List<Sample>());
            for (int r = 0; r < o.Rounds; r++)
            {
                var order = r % 2 == 0 ? settings : settings.Reverse().ToArray();
                foreach (var setting in order)
                {
                    var sample = Child(o, workload, setting.Variable, setting.Value);
                    samples[setting.Name].Add(sample);
                    log.WriteLine($"{workload} round {r}, {setting.Name}: {sample.ImagesPerSecond:F2} img/s, {sample.FaultsPerImage:F0} faults/image, " +
                                  $"{sample.Gen2PerStep:F2} gen-2/step, peak {sample.PeakMiB:F0} MiB, GC committed {sample.CommittedMiB:F0} MiB ({sample.Setting})");
                }
            }
            var x = samples[a];
            var y = samples[b];
            double Med(IEnumerable<double> v) => Stats.Of(v.ToArray()).Median;
            static string Rate(double r) => r.ToString(r < 100 ? "F2" : "F0", CultureInfo.InvariantCulture);
            string Pair(Func<Sample, double> f, string format) =>
                $"{Med(x.Select(f)).ToString(format, CultureInfo.InvariantCulture)} | {Med(y.Select(f)).ToString(format, CultureInfo.InvariantCulture)}";
            Console.WriteLine($"| {workload} | {Rate(Med(x.Select(s => s.ImagesPerSecond)))} | {Rate(Med(y.Select(s => s.ImagesPerSecond)))} | " +
                              $"{Med(x.Zip(y, (p, q) => p.ImagesPerSecond / q.ImagesPerSecond)):F2}× | {Pair(s => s.FaultsPerImage, "F0")} | " +
                              $"{Pair(s => s.Gen2PerStep, "F2")} | {Pair(s => s.PeakMiB, "F0")} | {Pair(s => s.CommittedMiB, "F0")} |");
        }
        Console.WriteLine();
    }

    static Sample Child(Options o, string workload, string? variable, string? value)
    {
        string[] args = ["--bench", "allocator-child", "--alloc-workloads", workload, "--alloc-images", o.Images.ToString(CultureInfo.InvariantCulture),
                         "--alloc-epochs", o.Epochs.ToString(CultureInfo.InvariantCulture), "--alloc-folder", o.Folder ?? "none"];
        var (output, exitCode) = ChildRun.Of(args, environment =>
        {
            // Each child starts from the same environment but the one switch (a user's own MALLOC_* would mask the comparison).
            foreach (var v in GlibcMallocPolicy.UserVariables.Append(GlibcMallocPolicy.OptOutVariable).Append("GLIBC_TUNABLES").Append(RegionVariable)) environment.Remove(v);
            if (variable is not null) environment[variable] = value;
        });
        var line = output.Split('\n').FirstOrDefault(l => l.StartsWith("ALLOC ", StringComparison.Ordinal))
                   ?? throw new InvalidOperationException($"allocator child for {workload} exited with {exitCode} without a result:\n{output}");
        var p = line.Split(' ', 7);
        double D(int i) => double.Parse(p[i], CultureInfo.InvariantCulture);
        return new Sample(D(1), D(2), D(3), D(4), D(5), p[6]);
    }

    /// <summary>In the child: trains, prints "ALLOC img/s peakMiB faults-per-image gen2-per-step committedMiB setting".</summary>
    public static void ChildMain(string workload, int images, int epochs, string? folder)
    {
        var parts = workload.Split(':');
        if (parts.Length != 3 || parts[1] is not ("fp32" or "bf16"))
            throw new ArgumentException($"A workload is preset:precision:batch with precision fp32 or bf16 (e.g. pico32:bf16:256); got '{workload}'.");
        var config = PresetSpeedBenchmark.Parse(parts[0]);
        var options = new MaePretrainOptions
        {
            BatchSize = int.Parse(parts[2], CultureInfo.InvariantCulture), Epochs = epochs, WarmupEpochs = 1, Seed = 3, LogEvery = 1,
            Precision = parts[1] == "bf16" ? MaePrecision.Bf16 : MaePrecision.Fp32, Device = MaeDevice.Cpu,
        };
        using var model = MaePretrainer.CreateModel(config, options);
        IMaeImageSource source;
        MaeImageSource? memory = null;
        if (folder is not null) source = MaeImageFileSource.FromFolder(folder, new MaeImageInputOptions { Augmentation = { OutputSize = config.ImageSize } });
        else
        {
            using var scope = NewDisposeScope();
            memory = MaeImageSource.FromTensor(randn(images, config.InChannels, config.ImageSize, config.ImageSize));
            source = memory;
        }
        var rates = new List<double>();
        long faults0 = 0, faults1 = 0, steps0 = 0, steps1 = 0;
        // The former engine's region: entered before each step's batch is fetched, left after its optimizer step. Here
        // the progress report (synchronous, after every step) leaves one region and enters the next.
        bool region = Environment.GetEnvironmentVariable(RegionVariable) == "1";
        bool inRegion = region && GC.TryStartNoGCRegion(RegionBudget);
        int gen2 = GC.CollectionCount(2);
        var progress = new ProgressAction<MaePretrainProgress>(p =>
        {
            if (region)
            {
                if (inRegion && System.Runtime.GCSettings.LatencyMode == System.Runtime.GCLatencyMode.NoGCRegion) GC.EndNoGCRegion();
                inRegion = GC.TryStartNoGCRegion(RegionBudget);
            }
            if (p.Step != p.StepsPerEpoch - 1) return;   // each epoch's last step
            if (p.Epoch == 0) (faults0, steps0) = (MemoryProbe.MinorFaults(), p.GlobalStep);
            else
            {
                rates.Add(p.ImagesPerSecond);
                (faults1, steps1) = (MemoryProbe.MinorFaults(), p.GlobalStep);
            }
        });
        var result = new MaePretrainer(options).Train(model, source, progress);
        if (inRegion && System.Runtime.GCSettings.LatencyMode == System.Runtime.GCLatencyMode.NoGCRegion) GC.EndNoGCRegion();
        double gen2PerStep = (GC.CollectionCount(2) - gen2) / (double)Math.Max(1, result.GlobalSteps);
        double committedMiB = GC.GetGCMemoryInfo().TotalCommittedBytes / 1048576.0;
        memory?.Dispose();
        double faultsPerImage = (faults1 - faults0) / (double)Math.Max(1, (steps1 - steps0) * options.BatchSize);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"ALLOC {Stats.Of(rates.ToArray()).Median:R} {MemoryProbe.PeakResidentMiB():R} {faultsPerImage:R} {gen2PerStep:R} {committedMiB:R} {TorchRuntime.MallocSetting}{(region ? "; GC-free region per step" : "")}"));
    }
}
