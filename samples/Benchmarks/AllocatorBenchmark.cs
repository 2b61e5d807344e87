using System.Globalization;
using Mae.MLNet.Input;
using Mae.MLNet.Model;
using Mae.MLNet.Pretraining;
using Mae.MLNet.Runtime;
using static TorchSharp.torch;

namespace Mae.MLNet.Benchmarks;

/// <summary>
/// Pre-training with the library's malloc setting (Runtime/GlibcMallocPolicy: freed memory kept up to glibc's 32 MiB mmap
/// ceiling) against glibc's own defaults (MAE_MALLOC_TUNING=0). malloc's setting is process-wide and fixed at start-up,
/// so each run is a fresh child process; the two settings alternate within each round (their order too). A child runs
/// MaePretrainer for a few epochs, on random images in memory or on an image folder, and reports the median img/s of its
/// epochs after the first, the minor page faults per image over those epochs and its peak resident set.
/// </summary>
public static class AllocatorBenchmark
{
    public sealed record Options(IReadOnlyList<string> Workloads, int Rounds, int Images, int Epochs, string? Folder);

    sealed record Sample(double ImagesPerSecond, double PeakMiB, double FaultsPerImage, string Setting);

    static readonly (string Name, string? OptOut)[] Settings = [("library (default)", null), ("glibc defaults", "0")];

    public static void Run(Options o, TextWriter log)
    {
        Console.WriteLine($"## glibc malloc and the step: the library's setting vs glibc's defaults ({(o.Folder is null ? $"{o.Images} random images in memory" : $"the image folder {o.Folder}")}, {o.Epochs} epochs per child, {o.Rounds} rounds alternating)");
        Console.WriteLine();
        Console.WriteLine("A workload is preset:precision:batch. img/s: median over the epochs after the first, then over the rounds; ratio: per round, median; page faults: minor faults per image over those epochs; peak RSS: VmHWM of the child.");
        Console.WriteLine();
        Console.WriteLine("| workload | img/s, library | img/s, glibc defaults | library ÷ defaults | page faults / image, library | defaults | peak RSS MiB, library | defaults |");
        Console.WriteLine("|---|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var workload in o.Workloads)
        {
            var samples = Settings.ToDictionary(s => s.Name, _ => new List<Sample>());
            for (int r = 0; r < o.Rounds; r++)
            {
                var order = r % 2 == 0 ? Settings : Settings.Reverse().ToArray();
                foreach (var (name, optOut) in order)
                {
                    var sample = Child(o, workload, optOut);
                    samples[name].Add(sample);
                    log.WriteLine($"{workload} round {r}, {name}: {sample.ImagesPerSecond:F2} img/s, {sample.FaultsPerImage:F0} faults/image, peak {sample.PeakMiB:F0} MiB ({sample.Setting})");
                }
            }
            var lib = samples[Settings[0].Name];
            var glibc = samples[Settings[1].Name];
            double Med(IEnumerable<double> v) => Stats.Of(v.ToArray()).Median;
            static string Rate(double r) => r.ToString(r < 100 ? "F2" : "F0", CultureInfo.InvariantCulture);
            Console.WriteLine($"| {workload} | {Rate(Med(lib.Select(s => s.ImagesPerSecond)))} | {Rate(Med(glibc.Select(s => s.ImagesPerSecond)))} | " +
                              $"{Med(lib.Zip(glibc, (a, b) => a.ImagesPerSecond / b.ImagesPerSecond)):F2}× | {Med(lib.Select(s => s.FaultsPerImage)):F0} | " +
                              $"{Med(glibc.Select(s => s.FaultsPerImage)):F0} | {Med(lib.Select(s => s.PeakMiB)):F0} | {Med(glibc.Select(s => s.PeakMiB)):F0} |");
        }
        Console.WriteLine();
    }

    static Sample Child(Options o, string workload, string? optOut)
    {
        string[] args = ["--bench", "allocator-child", "--alloc-workloads", workload, "--alloc-images", o.Images.ToString(CultureInfo.InvariantCulture),
                         "--alloc-epochs", o.Epochs.ToString(CultureInfo.InvariantCulture), "--alloc-folder", o.Folder ?? "none"];
        var (output, exitCode) = ChildRun.Of(args, environment =>
        {
            // Each child starts from the same environment but the one switch (a user's own MALLOC_* would mask the comparison).
            foreach (var v in GlibcMallocPolicy.UserVariables.Append(GlibcMallocPolicy.OptOutVariable).Append("GLIBC_TUNABLES")) environment.Remove(v);
            if (optOut is not null) environment[GlibcMallocPolicy.OptOutVariable] = optOut;
        });
        var line = output.Split('\n').FirstOrDefault(l => l.StartsWith("ALLOC ", StringComparison.Ordinal))
                   ?? throw new InvalidOperationException($"allocator child for {workload} exited with {exitCode} without a result:\n{output}");
        var p = line.Split(' ', 5);
        double D(int i) => double.Parse(p[i], CultureInfo.InvariantCulture);
        return new Sample(D(1), D(2), D(3), p[4]);
    }

    /// <summary>In the child: trains, prints "ALLOC img/s peakMiB faults-per-image setting".</summary>
    public static void ChildMain(string workload, int images, int epochs, string? folder)
    {
        var parts = workload.Split(':');
        if (parts.Length != 3 || parts[1] is not ("fp32" or "bf16"))
            throw new ArgumentException($"A workload is preset:precision:batch with precision fp32 or bf16 (e.g. pico32:bf16:256); got '{workload}'.");
        var config = PresetSpeedBenchmark.Parse(parts[0]);
        var options = new MaePretrainOptions
        {
            BatchSize = int.Parse(parts[2], CultureInfo.InvariantCulture), Epochs = epochs, WarmupEpochs = 1, Seed = 3, LogEvery = int.MaxValue,
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
        var progress = new ProgressAction<MaePretrainProgress>(p =>
        {
            if (p.Step != p.StepsPerEpoch - 1) return;   // pre-training reports each epoch's last step
            if (p.Epoch == 0) (faults0, steps0) = (MemoryProbe.MinorFaults(), p.GlobalStep);
            else
            {
                rates.Add(p.ImagesPerSecond);
                (faults1, steps1) = (MemoryProbe.MinorFaults(), p.GlobalStep);
            }
        });
        new MaePretrainer(options).Train(model, source, progress);
        memory?.Dispose();
        double faultsPerImage = (faults1 - faults0) / (double)Math.Max(1, (steps1 - steps0) * options.BatchSize);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"ALLOC {Stats.Of(rates.ToArray()).Median:R} {MemoryProbe.PeakResidentMiB():R} {faultsPerImage:R} {TorchRuntime.MallocSetting}"));
    }
}
