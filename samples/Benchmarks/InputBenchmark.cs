using System.Diagnostics;
using System.Globalization;
using Microsoft.ML;
using Mae.MLNet.Input;
using Mae.MLNet.Model;
using Mae.MLNet.Runtime;
using TorchSharp;
using Mae.MLNet.Pretraining;
using static TorchSharp.torch;

namespace Mae.MLNet.Benchmarks;

public sealed record InputBenchOptions
{
    public required string Folder { get; init; }
    public string Python { get; init; } = "/usr/bin/python3";
    public string ScriptDir { get; init; } = Path.Combine("samples", "Benchmarks", "input");
    public int[] Sizes { get; init; } = { 224, 32 };
    public int Workers { get; init; } = Environment.ProcessorCount;
    public int Batch { get; init; } = 64;
    public int Rounds { get; init; } = 3;
    public string Preset { get; init; } = "tiny32";
    public bool EndToEnd { get; init; } = true;
    /// <summary>The training step's precision end to end (fp32: the library's default and the earlier tables'; the `mae`
    /// tool's auto is bf16 on a CPU that has it).</summary>
    public MaePrecision Precision { get; init; } = MaePrecision.Fp32;
    public Device Device { get; init; } = CPU;
    /// <summary>Nice values of the decode workers; end to end is measured for each, alternating (the first one also
    /// for the loader tables).</summary>
    public int[] Nice { get; init; } = { Auto };
    /// <summary>A <see cref="Nice"/> entry meaning "the library's choice" (WorkerNice unset).</summary>
    public const int Auto = -1;
    /// <summary>Busy-loop processes kept running while everything is measured (other users' CPU-bound work).</summary>
    public int Contend { get; init; }
    /// <summary>Each busy loop in a session of its own (<c>setsid</c>), as work started from another terminal, login or
    /// service is, rather than a child in this process's session. With the kernel's autogroup scheduling (on by default in
    /// kernels built with it) the cores are shared fairly between sessions first, then between the threads of each one, so
    /// the busy loops then take a session's share each, whatever their nice.</summary>
    public bool ContendOwnSessions { get; init; }
    /// <summary>The loader-alone tables beside torchvision (needs torchvision in <see cref="Python"/>).</summary>
    public bool LoaderTables { get; init; } = true;
    /// <summary>Also time the README's earlier ML.NET route end to end: LoadImages → ResizeImages → ExtractPixels →
    /// MaePretrain (decoded on the training thread, cropped on the resized image).</summary>
    public bool MlNetRoute { get; init; }
    /// <summary>Also measure the default without its urgent workers (niced workers only, as before 2026-12-05), alternating.</summary>
    public bool CompareUrgent { get; init; }
}

/// <summary>
/// `--bench input`: (a) the loader alone — this library's <see cref="MaeImageFileSource"/> (with and without the scaled
/// JPEG decode) beside the official pre-training pipeline in torchvision (ImageFolder + RandomResizedCrop(bicubic) +
/// flip + ToTensor + Normalize in a DataLoader) on the same folder, the same worker count and batch, one epoch each,
/// alternating, several rounds; (b) pre-training end to end from the folder beside the step alone (same model, same
/// batch, images already in memory), alternating. img/s of an epoch: images / wall time, worker start included.
/// </summary>
public static class InputBenchmark
{
    static string NiceName(int nice) => nice == InputBenchOptions.Auto ? $"auto ({MaeImageInputOptions.CpuStepWorkerNice} on a CPU step)" : nice.ToString(CultureInfo.InvariantCulture);

    public static void Run(InputBenchOptions o, TextWriter output, TextWriter log)
    {
        EnsureFolder(o, log);
        using var contention = new Contention(o.Contend, o.ContendOwnSessions);
        if (o.Contend > 0)
            output.WriteLine($"While measuring, {o.Contend} busy-loop process(es) at nice 0 compete for the cores (`--contend {o.Contend}`), " +
                             (o.ContendOwnSessions ? "each in a session of its own (`--contend-sessions own`: other terminals' work)" : "children in this benchmark's session") +
                             $"; autogroup scheduling {AutogroupState()}.\n");
        RunTables(o, output, log);
    }

    static string AutogroupState()
    {
        const string knob = "/proc/sys/kernel/sched_autogroup_enabled";
        return !File.Exists(knob) ? "absent" : File.ReadAllText(knob).Trim() == "1" ? "on" : "off";
    }

    /// <summary>N processes that spin (a shell's empty loop) until disposed: other users' CPU-bound work; with
    /// <paramref name="ownSessions"/> each is started through <c>setsid</c> (util-linux), which execs it in a new session
    /// (a child of this process is never a process-group leader, so setsid does not fork and Kill reaches the loop).</summary>
    sealed class Contention : IDisposable
    {
        readonly List<Process> spinners = new();
        public Contention(int n, bool ownSessions)
        {
            for (int i = 0; i < n; i++)
            {
                var psi = new ProcessStartInfo(ownSessions ? "setsid" : "/bin/sh") { UseShellExecute = false };
                if (ownSessions) psi.ArgumentList.Add("/bin/sh");
                psi.ArgumentList.Add("-c");
                psi.ArgumentList.Add("while :; do :; done");
                spinners.Add(Process.Start(psi)!);
            }
        }
        public void Dispose()
        {
            foreach (var p in spinners) { try { p.Kill(); p.WaitForExit(); } catch (InvalidOperationException) { } p.Dispose(); }
        }
    }

    static void RunTables(InputBenchOptions o, TextWriter output, TextWriter log)
    {
        int files = MaeImageFolder.ListImages(o.Folder).Count;
        output.WriteLine($"## Input pipeline: {files} JPEGs in {o.Folder}, {o.Workers} workers, batch {o.Batch}, one epoch per measurement, {o.Rounds} rounds alternating");
        output.WriteLine();
        if (o.LoaderTables) LoaderTables(o, output, log);
        if (o.EndToEnd) EndToEnd(o, files, output, log);
    }

    static void LoaderTables(InputBenchOptions o, TextWriter output, TextWriter log)
    {
        output.WriteLine("Loader alone. img/s = images / wall time of one epoch; img/CPU-s = images / CPU seconds used (this process; for torchvision its process and its worker processes), the fairer figure on a shared machine. torchvision = the official main_pretrain.py transform in a DataLoader. Ratios = ours ÷ torchvision within each round, median over the rounds.");
        output.WriteLine();
        output.WriteLine("| output px | variant | img/s | img/CPU-s | ratio img/s | ratio img/CPU-s |");
        output.WriteLine("|---:|---|---:|---:|---:|---:|");
        var loaderRates = new Dictionary<int, double>();
        foreach (int size in o.Sizes)
        {
            var scaled = new List<Rate>();
            var full = new List<Rate>();
            var tv = new List<Rate>();
            var nicedOnly = new List<Rate>();
            Loader(o, size, scaledDecode: true); // warm-up: JIT, page cache
            for (int r = 0; r < o.Rounds; r++)
            {
                scaled.Add(Loader(o, size, scaledDecode: true));
                if (o.CompareUrgent) nicedOnly.Add(Loader(o, size, scaledDecode: true, urgent: false));
                full.Add(Loader(o, size, scaledDecode: false));
                tv.Add(Torchvision(o, size));
                log.WriteLine($"size {size} round {r}: ours scaled {scaled[^1]}, " + (o.CompareUrgent ? $"niced workers only {nicedOnly[^1]}, " : "") + $"ours full {full[^1]}, torchvision {tv[^1]}");
            }
            loaderRates[size] = Stats.Of(scaled.Select(x => x.Wall).ToArray()).Median;
            void Row(string name, List<Rate> rates, bool ratio)
            {
                double wall = Stats.Of(rates.Select(x => x.Wall).ToArray()).Median, cpu = Stats.Of(rates.Select(x => x.PerCpu).ToArray()).Median;
                string rw = ratio ? $"{Stats.Of(rates.Zip(tv, (a, b) => a.Wall / b.Wall).ToArray()).Median:F2}×" : "–";
                string rc = ratio ? $"{Stats.Of(rates.Zip(tv, (a, b) => a.PerCpu / b.PerCpu).ToArray()).Median:F2}×" : "–";
                output.WriteLine($"| {size} | {name} | {wall:F0} | {cpu:F0} | {rw} | {rc} |");
            }
            Row("ours, scaled JPEG decode (default)", scaled, true);
            if (o.CompareUrgent) Row("the same, niced workers only (no urgent workers: before 2026-12-05)", nicedOnly, true);
            Row("ours, full decode (torchvision's pixels)", full, true);
            Row("torchvision DataLoader", tv, false);
        }
        output.WriteLine();
    }

    static void EndToEnd(InputBenchOptions o, int files, TextWriter output, TextWriter log)
    {
        var config = MaeConfig.Preset(o.Preset);
        int px = config.ImageSize;
        var step = new List<double>();
        var e2e = o.Nice.ToDictionary(n => n, _ => new List<double>());
        var e2eNicedOnly = new List<double>();
        var loader = new List<double>();
        var mlnet = new List<double>();
        for (int r = 0; r < o.Rounds; r++)
        {
            step.Add(Pretrain(o, config, files, null));
            foreach (int nice in o.Nice) e2e[nice].Add(Pretrain(o, config, files, nice));
            if (o.CompareUrgent) e2eNicedOnly.Add(Pretrain(o, config, files, o.Nice[0], urgent: false));
            if (o.MlNetRoute)
            {
                mlnet.Add(PretrainMlNetRoute(o, config));
                log.WriteLine($"end to end round {r}: LoadImages → ResizeImages → ExtractPixels → MaePretrain {mlnet[^1]:F0} img/s");
            }
            loader.Add(Loader(o, px, scaledDecode: true).Wall);
            log.WriteLine($"end to end round {r}: step alone {step[^1]:F0}, from the folder {string.Join(", ", o.Nice.Select(n => $"{e2e[n][^1]:F0} (nice {NiceName(n)})"))}" +
                          (o.CompareUrgent ? $", niced workers only {e2eNicedOnly[^1]:F0}" : "") + $", loader alone {loader[^1]:F0} img/s");
        }
        double s = Stats.Of(step).Median, l = Stats.Of(loader).Median;
        output.WriteLine($"Pre-training end to end, preset {o.Preset} ({px} px), batch {o.Batch}, {o.Precision.ToString().ToLowerInvariant()}, {o.Device}: second epoch of a 2-epoch MaePretrainer run (img/s, median of {o.Rounds}; step alone, end to end per worker nice value and loader alone alternate within each round):");
        output.WriteLine();
        // On a CPU step the decode and the step share the cores: each image costs 1/loader + 1/step seconds of the whole
        // machine, so 1/(1/loader + 1/step) is the most any overlap can give; min(loader, step) is the bound only where
        // the step runs elsewhere (a GPU).
        bool cpuStep = o.Device.type == DeviceType.CPU;
        output.WriteLine($"| decode workers' nice | step alone (images in memory) | loader alone | end to end from the JPEG folder | end to end ÷ min(loader, step) |" +
                         (cpuStep ? " end to end ÷ shared-cores bound 1/(1/loader + 1/step) |" : "") + " ÷ first row (per round, median) |");
        output.WriteLine("|---:|---:|---:|---:|---:|" + (cpuStep ? "---:|" : "") + "---:|");
        void Row(string label, List<double> rates)
        {
            double e = Stats.Of(rates).Median;
            double vsFirst = Stats.Of(rates.Zip(e2e[o.Nice[0]], (a, b) => a / b).ToArray()).Median;
            output.WriteLine($"| {label} | {s:F0} | {l:F0} | {e:F0} | {e / Math.Min(s, l):P0} |" + (cpuStep ? $" {e * (1 / l + 1 / s):P0} |" : "") + $" {vsFirst:F2}× |");
        }
        foreach (int nice in o.Nice) Row(NiceName(nice), e2e[nice]);
        if (o.CompareUrgent) Row($"{NiceName(o.Nice[0])}, niced workers only (before 2026-12-05)", e2eNicedOnly);
        output.WriteLine();
        if (o.MlNetRoute)
        {
            double m = Stats.Of(mlnet).Median;
            output.WriteLine($"The earlier ML.NET route on the same folder (LoadImages → ResizeImages({px}) → ExtractPixels → MaePretrain, which crops the resized image): {m:F0} img/s end to end; the folder source: {Stats.Of(e2e[o.Nice[0]]).Median:F0} img/s ({Stats.Of(e2e[o.Nice[0]]).Median / m:F2}×).");
            output.WriteLine();
        }
    }

    static void EnsureFolder(InputBenchOptions o, TextWriter log)
    {
        if (Directory.Exists(o.Folder) && Directory.EnumerateFiles(o.Folder, "*.jpg", SearchOption.AllDirectories).Any()) return;
        log.WriteLine($"making the JPEG folder {o.Folder} (2 000 photo-like images) with {o.ScriptDir}/make_jpeg_folder.py");
        RunProcess(o.Python, new[] { Path.Combine(o.ScriptDir, "make_jpeg_folder.py"), o.Folder, "2000" });
    }

    static MaeImageInputOptions InputOptions(InputBenchOptions o, int size, bool scaledDecode, int? nice = null, bool urgent = true) => new()
    {
        Augmentation = { OutputSize = size }, Workers = o.Workers, ScaledJpegDecode = scaledDecode, UrgentWorkers = urgent,
        WorkerNice = (nice ?? o.Nice[0]) is int n && n != InputBenchOptions.Auto ? n : null,
    };

    /// <summary>Images per wall second and per CPU second.</summary>
    public readonly record struct Rate(double Wall, double PerCpu)
    {
        public override string ToString() => $"{Wall:F0} img/s, {PerCpu:F0} img/CPU-s";
    }

    /// <summary>One training epoch of the loader alone.</summary>
    static Rate Loader(InputBenchOptions o, int size, bool scaledDecode, bool urgent = true)
    {
        var source = MaeImageFileSource.FromFolder(o.Folder, InputOptions(o, size, scaledDecode, urgent: urgent));
        using var self = Process.GetCurrentProcess();
        var cpu0 = self.TotalProcessorTime;
        var clock = Stopwatch.StartNew();
        long n = 0;
        foreach (var t in source.Batches(new MaeEpochPlan { Seed = 1, Epoch = 0, BatchSize = o.Batch }))
        {
            n += t.shape[0];
            t.Dispose();
        }
        double wall = clock.Elapsed.TotalSeconds;
        self.Refresh();
        return new Rate(n / wall, n / (self.TotalProcessorTime - cpu0).TotalSeconds);
    }

    static Rate Torchvision(InputBenchOptions o, int size)
    {
        var text = RunProcess(o.Python, new[] { Path.Combine(o.ScriptDir, "torchvision_loader.py"), o.Folder, size.ToString(CultureInfo.InvariantCulture),
            o.Workers.ToString(CultureInfo.InvariantCulture), o.Batch.ToString(CultureInfo.InvariantCulture), "1" });
        var parts = text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Last(l => l.StartsWith("epoch")).Split(' ');
        double n = double.Parse(parts[3], CultureInfo.InvariantCulture);
        return new Rate(n / double.Parse(parts[5], CultureInfo.InvariantCulture), n / double.Parse(parts[7], CultureInfo.InvariantCulture));
    }

    /// <summary>Two epochs of MaePretrainer; the second epoch's img/s (its own clock, the pipeline fill included).</summary>
    static double Pretrain(InputBenchOptions o, MaeConfig config, int files, int? folderNice, bool urgent = true)
    {
        var options = new MaePretrainOptions
        {
            BatchSize = o.Batch, Epochs = 2, WarmupEpochs = 1, Seed = 3, LogEvery = int.MaxValue, Precision = o.Precision,
            Device = o.Device.type == DeviceType.CUDA ? MaeDevice.Cuda : MaeDevice.Cpu,
        };
        using var model = MaePretrainer.CreateModel(config, options);
        IMaeImageSource source;
        MaeImageSource? memory = null;
        if (folderNice is int nice) source = MaeImageFileSource.FromFolder(o.Folder, InputOptions(o, config.ImageSize, true, nice, urgent));
        else
        {
            using var scope = NewDisposeScope();
            memory = MaeImageSource.FromTensor(randn(files, config.InChannels, config.ImageSize, config.ImageSize));
            source = memory;
        }
        double rate = 0;
        var progress = new ProgressAction<MaePretrainProgress>(p => { if (p.Epoch == 1) rate = p.ImagesPerSecond; });
        new MaePretrainer(options).Train(model, source, progress);
        memory?.Dispose();
        return rate;
    }

    public sealed class PathRow
    {
        public string Path { get; set; } = "";
    }

    /// <summary>MaePretrain over LoadImages → ResizeImages → ExtractPixels; the second epoch's img/s.</summary>
    static double PretrainMlNetRoute(InputBenchOptions o, MaeConfig config)
    {
        var ml = new Microsoft.ML.MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(MaeImageFolder.ListImages(o.Folder).Select(p => new PathRow { Path = p }));
        var pixels = ml.Transforms.LoadImages("Image", null, "Path")
            .Append(ml.Transforms.ResizeImages("Image", config.ImageSize, config.ImageSize))
            .Append(ml.Transforms.ExtractPixels("Pixels", "Image", interleavePixelColors: false, scaleImage: 1f / 255))
            .Fit(data).Transform(data);
        double rate = 0;
        var featurizer = ml.Transforms.MaePretrain(new MaePretrainEstimatorOptions
        {
            InputColumnName = "Pixels", Model = config,
            Training = new MaePretrainOptions { BatchSize = o.Batch, Epochs = 2, WarmupEpochs = 1, Seed = 3, LogEvery = int.MaxValue, Device = MaeDevice.Cpu },
            Progress = new ProgressAction<MaePretrainProgress>(p => { if (p.Epoch == 1) rate = p.ImagesPerSecond; }),
        }).Fit(pixels);
        featurizer.Autoencoder?.Dispose();
        return rate;
    }

    static string RunProcess(string file, IEnumerable<string> args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {file}");
        var err = p.StandardError.ReadToEndAsync();
        string stdout = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"{file} {string.Join(' ', psi.ArgumentList)} failed ({p.ExitCode}): {err.Result}");
        return stdout;
    }
}
