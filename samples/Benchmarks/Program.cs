using System.Globalization;
using Mae.MLNet.Benchmarks;
using Mae.MLNet.Model;
using Mae.MLNet.Runtime;
using TorchSharp;
using static TorchSharp.torch;

// Mae.MLNet benchmarks: a plain harness that prints markdown tables and the command that reproduces them.
//   --bench train,table5     which benchmarks: train (includes the 1024³ matmul rates it is compared with),
//                            table5, gemm, profile (time per phase of a step; attention written out vs fused)
//   --preset tiny32          model of the training benchmark
//   --dtypes fp32,bf16       compute precisions of the training benchmark (bf16 = mixed precision, fp32 master weights)
//   --paths new,old          training step: the engine's (flat buffer + whole-buffer AdamW, one weight cast per step, loss
//                            read per window) and/or the old one (per-parameter AdamW, casts per layer call, loss read per
//                            step); all variants alternate window by window in one run
//   --against-official DIR   also time the official models_mae.py (DIR holds it and util/pos_embed.py) in a Python
//                            process, its windows alternating with ours; --python (default /usr/bin/python3 if present);
//                            timm must be importable (PYTHONPATH)
//   --batch 64 --steps 300 --warmup 20 --window 20 --lr 1e-3 (peak; warm-up 10 %, cosine to 0) --seed 1
//   --t5-batch 4 --t5-steps 4 --t5-warmup 1 --t5-dtype fp32
//   --threads N              libtorch intra-op threads (default: libtorch's choice)
//   --bench gpucheck         correctness on --device (official-output parity, featurize vs cpu, pre-training + resume,
//                            fine-tune + saved zip); --fixtures DIR (default test/Mae.MLNet.Tests/Fixtures)
//   --device cpu|cuda|auto   where train, table5, gemm and gpucheck run (default cpu); --gemm-n (1024; 8192 on CUDA)
//   --tf32 true|false        CUDA fp32 matmuls in TF32 (default true); --fused-attention true|false (CUDA bf16/fp16
//                            attention through scaled_dot_product_attention; default true)
//   --bench featurize        MaeFeaturize images/s through TorchSharp and through the saved zip (OnnxTransformer)
//                            --fz-preset vit-b16 --fz-batch 32 --fz-images 64
//   --bench input            image-file input: loader alone beside torchvision's DataLoader (same folder, workers, batch),
//                            and pre-training end to end from the folder beside the step alone; --input-folder DIR
//                            (default /tmp/mae-input-bench, made by samples/Benchmarks/input/make_jpeg_folder.py if absent)
//                            --input-sizes 224,32 --input-workers N (default: cores) --input-batch 64 --input-rounds 3
//                            --input-preset tiny32 --input-precision fp32 (bf16, auto) --python /usr/bin/python3 --input-e2e true --input-nice auto (or auto,10,0: end to end for each, alternating)
//                            --input-mlnet true (also the LoadImages → ResizeImages → ExtractPixels → MaePretrain route)
//                            --contend N (N busy-loop processes compete while everything is measured) --contend-sessions own
//                            (each loop in a session of its own, as another terminal's work; default shared) --input-loader false
//                            --input-urgent-ab true (also the default without its urgent workers, alternating)
//                            (skip the loader-alone tables beside torchvision)
//   --bench nccl             the NCCL path on one GPU (torchrun-style bootstrap, collectives, CUDA pre-training with
//                            NCCL vs one process, 2 ranks on one GPU refused): samples/Benchmarks/gpu/nccl.sh
//   --bench dataparallel     MPI ranks (mpirun) vs 1 process, alternating: img/s and all-reduce ms per step
//                            --dp-runs 1x2,2x1,1x1 (ranks x threads per rank) --dp-preset tiny32 --dp-batch 64 (global) --dp-steps 20
//                            --dp-rounds 3 --dp-precision fp32
//   --bench overlap          the gradient all-reduce overlapped with backward vs after it, step pairs alternating in one
//                            mpirun run: --dp-ranks 2 --dp-threads 1 --dp-preset tiny32 --dp-batch 64 (per rank) --dp-steps 40
//   --bench augmentation     the batched pre-training augmentation per resampler, and the fine-tuning one without and with
//                            RandAugment + erasing (CPU): --aug-batch 64 --aug-in 32 --aug-out 32
//   --bench presets          training-step img/s of 32-px candidates alternating in one run: --candidates tiny32,p4-e128x6x4-d64x1x2
//                            (a preset or p{patch}-e{W}x{D}x{H}-d{W}x{D}x{H}) --dtype bf16 --batch --steps --warmup --window
//   --bench allocator        pre-training with the library's malloc setting vs glibc's defaults (MAE_MALLOC_TUNING=0), a child
//                            process each, alternating: --alloc-workloads pico32:bf16:256,nano32:fp32:256 (preset or
//                            candidate:precision:batch) --alloc-rounds 3 --alloc-images 4096 --alloc-epochs 4 --alloc-folder DIR
//                            --alloc-compare gc-region: the steps as they are vs each inside a GC-free region (the engine
//                            until 2026-12-06), same children and table (gen-2 collections per step, GC committed memory)
//                            (default none: random images in memory)
//   --bench rss              peak RSS of featurizing --rss-rows 2000,20000 rows (--rss-preset mnist28), one child
//                            process per count
//   --bench probe-memory     MaeLinearProbe on views the caller cached: CacheInputs true vs false, a child process each,
//                            alternating: peak RSS above the inputs --pm-rows 50000 --pm-width 768 --pm-rounds 3
//   --bench predict-gc       PredictionEngine ms/row with and without a GC-free region per row (what NoGcScope did),
//                            alternating, on an empty heap and with --live-objects 10000000 kept alive
//                            --pg-preset mnist28 --pg-rows 200 --pg-rounds 6
CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;

var opts = ParseArgs(args);
string Get(string key, string fallback) => opts.TryGetValue(key, out var v) ? v : fallback;
int GetInt(string key, int fallback) => int.Parse(Get(key, fallback.ToString()));
double GetDouble(string key, double fallback) => double.Parse(Get(key, fallback.ToString("R")));

var benches = Get("bench", "train,table5").Split(',', StringSplitOptions.RemoveEmptyEntries);
if (opts.ContainsKey("threads")) TorchRuntime.Threads = GetInt("threads", 2);
var device = MaeDeviceExtensions.Parse(Get("device", "cpu")).Resolve();
bool onGpu = device.type == DeviceType.CUDA;
int gemmN = GetInt("gemm-n", onGpu ? 8192 : 1024);
// fp32 matrix math on CUDA: TF32 tensor cores by default, as MaePretrainer uses (--tf32 false: full fp32).
if (onGpu) TorchRuntime.AllowTf32(Get("tf32", "true") == "true");
// --fused-attention false: the explicit attention on CUDA too (to measure what the fused kernel gives).
bool fusedAttention = Get("fused-attention", "true") == "true"; // a setting of each model the benchmarks make
var log = Console.Error;

Console.WriteLine("# Mae.MLNet benchmarks");
Console.WriteLine();
Console.WriteLine($"- date: {DateTime.Now:yyyy-MM-dd HH:mm} (local), {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC");
Console.WriteLine($"- machine: {Machine.Describe()}");
Console.WriteLine($"- device: {device}{(onGpu ? $" ({Machine.GpuName()}), fp32 matmuls {(Get("tf32", "true") == "true" ? "in TF32" : "in full fp32")}, attention {(fusedAttention ? "fused (SDPA) for bf16/fp16, explicit for fp32" : "explicit")}" : "")}");
Console.WriteLine($"- libtorch threads: {TorchRuntime.Threads} intra-op, {get_num_interop_threads()} inter-op");
Console.WriteLine($"- load average before: {Machine.LoadAverage()}");
Console.WriteLine($"- command: `dotnet run -c Release --project samples/Benchmarks -- {string.Join(' ', args)}`".Replace("--  `", "`"));
Console.WriteLine();

if (benches.Contains("presets"))
{
    var o = new TrainOptions
    {
        Batch = GetInt("batch", 128), Steps = GetInt("steps", 23), Warmup = GetInt("warmup", 3), Window = GetInt("window", 5),
        Lr = GetDouble("lr", 1e-3), Seed = GetInt("seed", 1), FusedAttention = fusedAttention,
    };
    ScalarType? dtype = Get("dtype", "bf16") == "fp32" ? null : ScalarType.BFloat16;
    PresetSpeedBenchmark.Run(Get("candidates", "tiny32").Split(',', StringSplitOptions.RemoveEmptyEntries), dtype, o, log, device);
}

if (benches.Contains("train") || benches.Contains("gemm"))
{
    var gemm32 = Gemm.Measure(ScalarType.Float32, device, gemmN);
    var gemm16 = Gemm.Measure(ScalarType.BFloat16, device, gemmN);
    Console.WriteLine($"## Matmul rate, {gemmN}×{gemmN}×{gemmN}, {device}");
    Console.WriteLine();
    Console.WriteLine("| dtype | GFLOP/s best | GFLOP/s median |");
    Console.WriteLine("|---|---:|---:|");
    Console.WriteLine($"| fp32 | {gemm32.Best:F0} | {gemm32.Median:F0} |");
    Console.WriteLine($"| bf16 | {gemm16.Best:F0} | {gemm16.Median:F0} |");
    Console.WriteLine();

    if (benches.Contains("train"))
    {
        var config = MaeConfig.Preset(Get("preset", "tiny32"));
        var o = new TrainOptions
        {
            Batch = GetInt("batch", 64), Steps = GetInt("steps", 300), Warmup = GetInt("warmup", 20),
            Window = GetInt("window", 20), Lr = GetDouble("lr", 1e-3), Seed = GetInt("seed", 1), FusedAttention = fusedAttention,
        };
        double gflopPerImage = MaeFlops.TrainingStep(config, o.MaskRatio) / 1e9;
        var dtypes = Get("dtypes", "fp32,bf16").Split(',', StringSplitOptions.RemoveEmptyEntries).Select(name => name.ToLowerInvariant() switch
        {
            "fp32" or "float32" => (ScalarType?)null,
            "bf16" or "bfloat16" => ScalarType.BFloat16,
            "fp16" or "float16" => ScalarType.Float16,
            _ => throw new ArgumentException($"Unknown dtype '{name}'; expected fp32, bf16 or fp16."),
        }).ToList();
        var paths = Get("paths", "new,old").Split(',', StringSplitOptions.RemoveEmptyEntries);
        var variants = dtypes.SelectMany(d => paths.Select(p => new TrainVariant(d, p switch
        {
            "new" => false,
            "old" => true,
            _ => throw new ArgumentException($"Unknown path '{p}'; expected new or old."),
        }))).ToList();
        var officials = new List<OfficialTraining>();
        try
        {
            if (opts.TryGetValue("against-official", out var officialDir))
            {
                string python = Get("python", File.Exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3");
                foreach (var d in dtypes)
                    officials.Add(new OfficialTraining(python, Path.GetFullPath(officialDir), config, o.Batch, TorchRuntime.Threads, d, device, o.Seed));
            }
            log.WriteLine($"training {Get("preset", "tiny32")}: {string.Join(", ", variants.Select(v => v.Label).Concat(officials.Select(x => x.Label)))}, alternating window by window: {o.Steps} steps of batch {o.Batch}");
            var results = TrainingBenchmark.RunInterleaved(config, variants, o, log, device,
                betweenRounds: _ => { foreach (var x in officials) x.RunWindow(o.Window); });
            // The matmul rate again after training; the limit is the best rate seen in either measurement.
            gemm32 = Best(gemm32, Gemm.Measure(ScalarType.Float32, device, gemmN));
            gemm16 = Best(gemm16, Gemm.Measure(ScalarType.BFloat16, device, gemmN));
            Console.WriteLine($"Matmul rate again after training (best of both): fp32 {gemm32.Best:F0}, bf16 {gemm16.Best:F0} GFLOP/s.");
            Console.WriteLine();
            Console.WriteLine($"## Training step, preset {Get("preset", "tiny32")}, batch {o.Batch}, mask {o.MaskRatio}, AdamW (0.9, 0.95), wd 0.05");
            Console.WriteLine();
            Console.WriteLine($"Matmul work per training image-step: {gflopPerImage:F3} GFLOP (3 × forward {gflopPerImage / 3:F3}). " +
                              $"{o.Steps} steps (peak lr {o.Lr}, warm-up 10 %, cosine to 0), the first {o.Warmup} excluded from timing, img/s over windows of {o.Window} steps; each variant trains its own model from the same seed on the same batches and masks, the variants alternating window by window" +
                              (officials.Count > 0 ? $"; the official models_mae.py ({officials[0].Version}, {officials[0].OpenMp} as ours, random batches, its own masks) runs a window after each round of ours." : "."));
            Console.WriteLine();
            Console.WriteLine("| variant | img/s best | img/s median | ms/step (median) | GFLOP/s (median) | of best matmul rate | vs fp32 (new) | loss @ last step | mean loss, last window |");
            Console.WriteLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
            var fp32 = results.FirstOrDefault(r => r.Label == "fp32");
            foreach (var r in results)
            {
                double achieved = r.ImagesPerSecond.Median * gflopPerImage;
                double limit = (r.Label.StartsWith("fp32") ? gemm32 : gemm16).Best;
                string speedup = fp32 is null ? "–" : $"{r.ImagesPerSecond.Median / fp32.ImagesPerSecond.Median:F2}×";
                Console.WriteLine($"| {r.Label} | {r.ImagesPerSecond.Best:F0} | {r.ImagesPerSecond.Median:F0} | {1000 * o.Batch / r.ImagesPerSecond.Median:F0} | " +
                                  $"{achieved:F0} | {achieved / limit:P0} | {speedup} | {r.FinalLoss:F4} | {r.TailLoss:F4} |");
            }
            foreach (var x in officials)
            {
                var st = Stats.Of(x.ImagesPerSecond);
                string speedup = fp32 is null ? "–" : $"{st.Median / fp32.ImagesPerSecond.Median:F2}×";
                Console.WriteLine($"| {x.Label} | {st.Best:F0} | {st.Median:F0} | {1000 * o.Batch / st.Median:F0} | {st.Median * gflopPerImage:F0} | " +
                                  $"{st.Median * gflopPerImage / (x.Label.EndsWith("fp32") ? gemm32 : gemm16).Best:P0} | {speedup} | – | – |");
            }
            Console.WriteLine();
            foreach (var d in dtypes)
            {
                var ours = results.FirstOrDefault(r => r.Label == TrainingBenchmark.Label(d));
                var old = results.FirstOrDefault(r => r.Label == TrainingBenchmark.Label(d) + " old");
                var official = officials.FirstOrDefault(x => x.Label == "official " + TrainingBenchmark.Label(d));
                if (ours is not null && old is not null)
                    Console.WriteLine($"- {ours.Label}: new step vs old step {ours.ImagesPerSecond.Median / old.ImagesPerSecond.Median:F2}× (median windows), " +
                                      $"{ours.ImagesPerSecond.Best / old.ImagesPerSecond.Best:F2}× (best windows); last-window mean loss {ours.TailLoss:F4} vs {old.TailLoss:F4}.");
                if (ours is not null && official is not null)
                {
                    var st = Stats.Of(official.ImagesPerSecond);
                    Console.WriteLine($"- {ours.Label}: ours vs official {ours.ImagesPerSecond.Median / st.Median:F2}× (median windows), {ours.ImagesPerSecond.Best / st.Best:F2}× (best windows).");
                }
            }
            if (fp32 is not null)
                foreach (var r in results.Where(r => r != fp32 && !r.Label.EndsWith(" old")))
                    Console.WriteLine($"- {r.Label} vs fp32 after {o.Steps} steps: last-step loss differs by {Math.Abs(r.FinalLoss / fp32.FinalLoss - 1):P2}, " +
                                      $"last-window mean by {Math.Abs(r.TailLoss / fp32.TailLoss - 1):P2} (target ≤ 1 %).");
        }
        finally
        {
            foreach (var x in officials) x.Dispose();
        }
        Console.WriteLine();
    }
}

if (benches.Contains("input"))
{
    InputBenchmark.Run(new InputBenchOptions
    {
        Folder = Get("input-folder", "/tmp/mae-input-bench"), Python = Get("python", "/usr/bin/python3"),
        Sizes = Get("input-sizes", "224,32").Split(',', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse).ToArray(),
        Nice = Get("input-nice", "auto").Split(',').Select(n => n == "auto" ? InputBenchOptions.Auto : int.Parse(n)).ToArray(), MlNetRoute = Get("input-mlnet", "false") == "true",
        Workers = GetInt("input-workers", Environment.ProcessorCount), Batch = GetInt("input-batch", 64),
        Rounds = GetInt("input-rounds", 3), Preset = Get("input-preset", "tiny32"), EndToEnd = Get("input-e2e", "true") == "true",
        Precision = Enum.Parse<MaePrecision>(Get("input-precision", "fp32"), ignoreCase: true),
        Device = device, Contend = GetInt("contend", 0), ContendOwnSessions = Get("contend-sessions", "shared") switch { "own" => true, "shared" => false, var v => throw new ArgumentException($"--contend-sessions takes own or shared, not '{v}'") }, LoaderTables = Get("input-loader", "true") == "true", CompareUrgent = Get("input-urgent-ab", "false") == "true",
    }, Console.Out, log);
}

int exitCode = 0;
if (benches.Contains("gpucheck"))
{
    // Correctness on the chosen device (meant for --device cuda): see GpuCheck.
    if (!GpuCheck.Run(device, Get("fixtures", Path.Combine("test", "Mae.MLNet.Tests", "Fixtures")), Console.Out, log)) exitCode = 1;
}

if (benches.Contains("profile"))
{
    var dtypes = Get("dtypes", "fp32,bf16").Split(',').Select(n => n.StartsWith("bf") ? (ScalarType?)ScalarType.BFloat16 : null).ToList();
    ProfileBenchmark.Run(MaeConfig.Preset(Get("preset", "tiny32")), dtypes, GetInt("batch", 64), GetInt("profile-steps", 20), Console.Out, fusedAttention);
}

if (benches.Contains("table5"))
{
    var o = new Table5Options
    {
        Batch = GetInt("t5-batch", 4), Steps = GetInt("t5-steps", 4), Warmup = GetInt("t5-warmup", 1), Seed = GetInt("seed", 1),
        FusedAttention = fusedAttention,
    };
    ScalarType? dtype = Get("t5-dtype", "fp32") == "bf16" ? ScalarType.BFloat16 : null;
    var config = Table5Benchmark.Config;
    double flopsOurs = MaeFlops.TrainingStep(config, o.MaskRatio);
    double flopsAll = MaeFlops.TrainingStep(config, o.MaskRatio, encoderSeesAllTokens: true);
    log.WriteLine($"table 5: ViT-B/16 224 px, batch {o.Batch}, {o.Warmup} warm-up + {o.Steps} timed steps per variant");
    var r = Table5Benchmark.Run(dtype, o, log, device);
    var ours = Stats.Of(r.OursSeconds.Select(s => 1 / s).ToArray());
    var all = Stats.Of(r.AllTokensSeconds.Select(s => 1 / s).ToArray());
    double ratio = flopsAll / flopsOurs, speedup = ours.Median / all.Median, speedupBest = ours.Best / all.Best;
    Console.WriteLine($"## Table 5 ablation: ViT-B/16, 224 px, decoder 512×8, mask {o.MaskRatio}, batch {o.Batch}, {Get("t5-dtype", "fp32")}");
    Console.WriteLine();
    Console.WriteLine($"{o.Steps} timed training steps per variant after {o.Warmup} warm-up, the variants alternating step by step.");
    Console.WriteLine();
    Console.WriteLine("| encoder | GFLOP per image-step | s/step best | s/step median | img/s median |");
    Console.WriteLine("|---|---:|---:|---:|---:|");
    Console.WriteLine($"| w/ [M] (all {config.NumPatches} tokens + cls) | {flopsAll / 1e9:F1} | {1 / all.Best:F2} | {1 / all.Median:F2} | {all.Median * o.Batch:F2} |");
    Console.WriteLine($"| ours (visible {MaskedAutoencoder.LenKeep(config.NumPatches, o.MaskRatio)} tokens + cls) | {flopsOurs / 1e9:F1} | {1 / ours.Best:F2} | {1 / ours.Median:F2} | {ours.Median * o.Batch:F2} |");
    Console.WriteLine();
    Console.WriteLine($"- FLOP ratio {ratio:F2}×; wall-clock speedup {speedup:F2}× (median), {speedupBest:F2}× (best) = {speedup / ratio:P0} of the FLOP ratio (target ≥ 90 %).");
    Console.WriteLine();
}

if (benches.Contains("featurize"))
{
    var config = MaeConfig.Preset(Get("fz-preset", "vit-b16"));
    int batch = GetInt("fz-batch", 32), images = GetInt("fz-images", 64);
    var rows = FeaturizeBenchmark.Run(config, batch, images, log);
    Console.WriteLine($"## Featurize: {Get("fz-preset", "vit-b16")} at {config.ImageSize} px, {images} images, batch {batch}, CPU, fp32");
    Console.WriteLine();
    Console.WriteLine("| engine | images | seconds | images/s |");
    Console.WriteLine("|---|---:|---:|---:|");
    foreach (var r in rows) Console.WriteLine($"| {r.Engine} | {r.Images} | {r.Seconds:F1} | {r.ImagesPerSecond:F2} |");
    Console.WriteLine();
}

if (benches.Contains("augmentation"))
    AugmentationBenchmark.Run(GetInt("aug-batch", 64), GetInt("aug-in", 32), GetInt("aug-out", 32), Console.Out);

string? allocFolder = Get("alloc-folder", "none") is var folderArg && folderArg != "none" ? folderArg : null;
if (benches.Contains("allocator"))
    AllocatorBenchmark.Run(new AllocatorBenchmark.Options(Get("alloc-workloads", "pico32:bf16:256,nano32:fp32:256").Split(','),
        GetInt("alloc-rounds", 3), GetInt("alloc-images", 4096), GetInt("alloc-epochs", 4), allocFolder, Get("alloc-compare", "malloc")), log);

if (benches.Contains("allocator-child"))
{
    AllocatorBenchmark.ChildMain(Get("alloc-workloads", "pico32:bf16:256"), GetInt("alloc-images", 4096), GetInt("alloc-epochs", 4), allocFolder);
    return 0;
}

if (benches.Contains("rss"))
{
    // Each row count in its own child process, so that each peak resident set is its own.
    string preset = Get("rss-preset", "mnist28");
    Console.WriteLine($"## Peak memory of featurizing (MaeFeaturize, preset {preset}, batch 32, each count in a fresh process)");
    Console.WriteLine();
    Console.WriteLine("| rows | seconds | peak RSS (MiB) |");
    Console.WriteLine("|---:|---:|---:|");
    var peaks = new List<double>();
    foreach (var n in Get("rss-rows", "2000,20000").Split(','))
    {
        var line = ChildRun.Of(["--bench", "rss-child", "--rss-rows", n, "--rss-preset", preset]).Output.Split('\n').First(l => l.StartsWith("RSS "));
        var parts = line.Split(' ');
        peaks.Add(double.Parse(parts[3]));
        Console.WriteLine($"| {parts[1]} | {double.Parse(parts[2]):F1} | {double.Parse(parts[3]):F0} |");
    }
    Console.WriteLine();
    Console.WriteLine($"- largest / smallest peak: {peaks.Max() / peaks.Min():F3} (target: flat within 10 %)");
    Console.WriteLine();
}

if (benches.Contains("probe-memory"))
{
    int rows = GetInt("pm-rows", 50_000), width = GetInt("pm-width", 768), rounds = GetInt("pm-rounds", 3);
    var samples = LinearProbeBenchmark.Run(rows, width, rounds, log);
    Console.WriteLine($"## MaeLinearProbe on views the caller cached ({rows:N0} training and {rows / 5:N0} test rows × {width} features, " +
                      $"two L2 candidates; a fresh process per run, {rounds} rounds alternating; medians)");
    Console.WriteLine();
    Console.WriteLine($"`dotnet run -c Release --project samples/Benchmarks -- --bench probe-memory --pm-rows {rows} --pm-width {width} --pm-rounds {rounds}`");
    Console.WriteLine();
    Console.WriteLine("| CacheInputs | seconds | resident before, MiB | peak, MiB | peak − before, MiB | accuracy |");
    Console.WriteLine("|---|---:|---:|---:|---:|---:|");
    static double Median(IEnumerable<double> xs) => Stats.Of(xs.ToList()).Median;
    foreach (var g in samples.GroupBy(s => s.CacheInputs))
        Console.WriteLine($"| {g.Key.ToString().ToLowerInvariant()} | {Median(g.Select(s => s.Seconds)):F1} | {Median(g.Select(s => s.BeforeMiB)):F0} | " +
                          $"{Median(g.Select(s => s.PeakMiB)):F0} | {Median(g.Select(s => s.PeakMiB - s.BeforeMiB)):F0} | {g.First().Accuracy:P2} |");
    Console.WriteLine();
    Console.WriteLine($"- one copy of the training features: {rows * (double)width * 4 / 1048576:F0} MiB, of the test features {rows / 5 * (double)width * 4 / 1048576:F0} MiB");
    Console.WriteLine();
}

if (benches.Contains("probe-memory-child"))
{
    LinearProbeBenchmark.ChildMain(GetInt("pm-rows", 50_000), GetInt("pm-width", 768), Get("pm-cache", "true") == "true");
    return 0;
}

if (benches.Contains("dataparallel"))
{
    // --dp-runs 1x2,2x1,1x1: (ranks)x(threads per rank)
    var runs = Get("dp-runs", "1x2,2x1,1x1").Split(',').Select(r => r.Split('x')).Select(r => (int.Parse(r[0]), int.Parse(r[1]))).ToList();
    var o = new DataParallelBenchmark.Options(Get("dp-preset", "tiny32"), GetInt("dp-batch", 64), GetInt("dp-steps", 20), runs,
        GetInt("dp-rounds", 3), Get("dp-precision", "fp32"));
    var samples = DataParallelBenchmark.Run(o, log);
    Console.WriteLine($"## Data-parallel pre-training: MPI ranks vs 1 process ({o.Preset}, global batch {o.Batch}, {o.Precision}, CPU, second epoch of {o.Steps} steps timed, {o.Rounds} rounds, runs in alternating order)");
    Console.WriteLine();
    Console.WriteLine("| run | img/s median | img/s best | all-reduce ms/step in training (median) | all-reduce alone, ms (median) | loss at the end |");
    Console.WriteLine("|---|---:|---:|---:|---:|---:|");
    foreach (var g in samples.GroupBy(x => x.Run))
    {
        var ips = g.Select(x => x.ImagesPerSecond).OrderBy(x => x).ToList();
        var ar = g.Select(x => x.AllReduceMsPerStep).OrderBy(x => x).ToList();
        var alone = g.Select(x => x.AllReduceAloneMs).OrderBy(x => x).ToList();
        Console.WriteLine($"| {g.Key} | {ips[ips.Count / 2]:F1} | {ips[^1]:F1} | {ar[ar.Count / 2]:F2} | {alone[alone.Count / 2]:F2} | {g.Last().Loss:F4} |");
    }
    Console.WriteLine();
}

if (benches.Contains("predict-gc"))
{
    string preset = Get("pg-preset", "mnist28");
    int liveObjects = GetInt("live-objects", 10_000_000);
    var results = PredictGcBenchmark.Run(preset, GetInt("pg-rows", 200), GetInt("pg-rounds", 6), liveObjects, log);
    Console.WriteLine($"## PredictionEngine: a GC-free region per row vs none ({preset}, batch 1, CPU; median of alternating rounds)");
    Console.WriteLine();
    Console.WriteLine("| live objects on the heap | mode | ms per row | gen-2 collections per row |");
    Console.WriteLine("|---:|---|---:|---:|");
    foreach (var r in results) Console.WriteLine($"| {r.LiveObjects:N0} | {r.Mode} | {r.MsPerRow:F2} | {r.Gen2PerRow:F2} |");
    foreach (var live in results.Select(r => r.LiveObjects).Distinct())
    {
        var pair = results.Where(r => r.LiveObjects == live).ToList();
        Console.WriteLine($"\nWith {live:N0} live objects: the region per row costs {pair[0].MsPerRow / pair[1].MsPerRow:F2}× the plain call.");
    }
    Console.WriteLine();
}

if (benches.Contains("nccl"))
{
    // The NCCL path on a lent GPU (samples/Benchmarks/gpu/nccl.sh): see NcclCheck.
    if (!NcclCheck.Run(Console.Out, log)) exitCode = 1;
}

if (benches.Contains("nccl-child")) return NcclCheck.Child();

if (benches.Contains("overlap"))
{
    // The all-reduce overlapped with backward vs after it, alternating in one mpirun run (DataParallelBenchmark.OverlapChildMain).
    string preset = Get("dp-preset", "tiny32"), precision = Get("dp-precision", "fp32");
    int batch = GetInt("dp-batch", 64), steps = GetInt("dp-steps", 40), ranks = GetInt("dp-ranks", 2), threads = GetInt("dp-threads", 1);
    var r = DataParallelBenchmark.Overlap(preset, batch, steps, ranks, threads, precision);
    Console.WriteLine($"## All-reduce overlapped with backward ({ranks} MPI ranks × {threads} thread, {preset}, batch {batch} per rank, {precision}, CPU; steps alternate in pairs within one run, first epoch of {steps} steps warms up)");
    Console.WriteLine();
    Console.WriteLine("| step time, median of the second epoch's steps | ms |");
    Console.WriteLine("|---|---:|");
    Console.WriteLine($"| all-reduce after backward ({r.Steps} steps) | {r.Without:F1} |");
    Console.WriteLine($"| all-reduce overlapped with backward ({r.Steps} steps) | {r.With:F1} |");
    Console.WriteLine($"| the all-reduce alone (every rank waiting, 10 times) | {r.Alone:F1} |");
    Console.WriteLine();
    Console.WriteLine($"Hidden: {(r.Without - r.With):F1} ms per step = {(r.Without - r.With) / r.Alone:P0} of the all-reduce alone (ratio with/without {r.With / r.Without:F3}).");
    Console.WriteLine();
}

if (benches.Contains("overlap-child"))
{
    DataParallelBenchmark.OverlapChildMain(Get("dp-preset", "tiny32"), GetInt("dp-batch", 64), GetInt("dp-steps", 40), GetInt("dp-threads", 1), Get("dp-precision", "fp32"));
    return 0;
}

if (benches.Contains("dp-child"))
{
    DataParallelBenchmark.ChildMain(Get("dp-preset", "tiny32"), GetInt("dp-batch", 64), GetInt("dp-steps", 20), GetInt("dp-threads", 1), Get("dp-precision", "fp32"));
    return 0;
}

if (benches.Contains("rss-child"))
{
    int n = GetInt("rss-rows", 2000);
    var (seconds, peak) = FeaturizeBenchmark.PeakMemory(MaeConfig.Preset(Get("rss-preset", "mnist28")), n, 32);
    Console.WriteLine($"RSS {n} {seconds:R} {peak:R}");
    return 0;
}

Console.WriteLine($"- load average after: {Machine.LoadAverage()}");
return exitCode;

static Stats Best(Stats a, Stats b) => a.Best >= b.Best ? a : b;

static Dictionary<string, string> ParseArgs(string[] args)
{
    var result = new Dictionary<string, string>();
    for (int i = 0; i < args.Length; i++)
    {
        if (!args[i].StartsWith("--") || i + 1 >= args.Length)
            throw new ArgumentException($"Expected '--name value' pairs; got '{args[i]}' at position {i}.");
        result[args[i][2..]] = args[++i];
    }
    return result;
}
