using System.Globalization;
using Mae.MLNet.FineTuning;
using Mae.MLNet.Input;
using Mae.MLNet.Runtime;
using Mae.MLNet.Training;
using TorchSharp;
using Mae.MLNet.Model;
using Mae.MLNet.Pretraining;
using static TorchSharp.torch;

namespace Mae.MLNet.TrainHost;

/// <summary>
/// The data-parallel child program of the distributed tests and of the benchmark's ranks-vs-one run:
/// <code>
/// [mpirun -np N] Mae.MLNet.TrainHost dp out=PATH [dir=CHECKPOINTS] [epochs=2] [images=40] [batch=4] [accum=1]
///     [precision=fp32|bf16] [resume] [fault=die:R:K|hang:R:K|throw:R:K] [model=tiny|small] [threads=1] [task=pretrain|finetune]
///     [metrics=FILE.jsonl] [tensorboard=DIR] [folder=DIR]   (pre-training)
/// </code>
/// Pre-trains an MAE (or fine-tunes a classifier from scratch on labels i mod 4, with no random augmentation) with <see cref="MaePretrainOptions.Collective"/> from the environment (world size 1 without
/// mpirun), <c>batch</c> being the global batch. Rank 0 writes PATH (every step's loss as float bits) and PATH.names
/// (parameter names and sizes); every rank writes PATH.weights.RANK (the trained parameters as float32) and prints
/// "RANK r/N … steps=… allreduce_ms=… elapsed_ms=…". <c>fault</c> makes rank R die abruptly (SIGKILL: no
/// MPI_Finalize), stop forever, or throw (a bad image on that rank alone) when it reads its K-th batch. <c>augment</c>
/// (fine-tuning) turns on random crops and flips, mixup / cutmix and drop path. <c>folder</c> pre-trains on the image files under DIR
/// (<see cref="MaeImageFileSource"/>, random crops and flips at the model's size) instead of the synthetic images.
/// </summary>
public static class DataParallelRun
{
    public static int Run(string[] args)
    {
        var inv = CultureInfo.InvariantCulture;
        var a = args.Select(x => x.Split('=', 2)).ToDictionary(x => x[0], x => x.Length > 1 ? x[1] : "true");
        string Get(string key, string fallback) => a.TryGetValue(key, out var v) ? v : fallback;
        if (!a.ContainsKey("out"))
        {
            Console.Error.WriteLine("usage: Mae.MLNet.TrainHost dp out=PATH [dir=…] [epochs=2] [images=40] [batch=4] [accum=1] [precision=fp32|bf16] [resume] [fault=die:R:K|hang:R:K|throw:R:K] [model=tiny|small] [threads=1]");
            return 2;
        }
        string output = a["out"];
        string? dir = a.TryGetValue("dir", out var d) ? d : null;
        int epochs = int.Parse(Get("epochs", "2"), inv), images = int.Parse(Get("images", "40"), inv);
        bool small = Get("model", "tiny") == "small";

        var collective = MaeCollective.FromEnvironment();
        // .NET turns SIGSEGV on a null dereference into NullReferenceException; Open MPI installs its own SIGSEGV handler
        // at MPI_Init unless one is already there ("opal_signal"). Check that .NET's survived, in every rank.
        try { _ = Length(null!); return 3; }
        catch (NullReferenceException) { }
        var options = TinyRun.Options(epochs, dir);
        options.BatchSize = int.Parse(Get("batch", "4"), inv);
        options.AccumIter = int.Parse(Get("accum", "1"), inv);
        options.Precision = Get("precision", "fp32") == "bf16" ? MaePrecision.Bf16 : MaePrecision.Fp32;
        options.Resume = a.ContainsKey("resume");
        options.Threads = int.Parse(Get("threads", "1"), inv);
        options.Collective = collective;
        options.LogEvery = 5;
        if (a.TryGetValue("metrics", out var metrics)) options.MetricsFile = metrics;
        if (a.TryGetValue("tensorboard", out var tb)) options.TensorBoardDir = tb;
        var config = small ? TinyRun.Config with { ImageSize = 32, EmbedDim = 192, Depth = 4, NumHeads = 3, DecoderEmbedDim = 96, DecoderDepth = 2, DecoderNumHeads = 3 } : TinyRun.Config;
        var pixels = TinyRun.Images(images, config.ImageSize);
        torch.nn.Module model;
        IReadOnlyList<float> losses;
        long steps;
        TimeSpan allReduce, elapsed;
        string? resumedFrom;
        if (Get("task", "pretrain") == "finetune")
        {
            // augment: random crops and flips of the in-memory images, mixup / cutmix and drop path, all drawn from
            // libtorch's generator (keyed per micro-batch in data-parallel runs); otherwise none of them.
            bool augment = a.ContainsKey("augment");
            var ft = new MaeFineTuneOptions
            {
                BatchSize = options.BatchSize, AccumIter = options.AccumIter, Epochs = epochs, WarmupEpochs = 1, LearningRate = 1e-3, Seed = 7,
                Device = MaeDevice.Cpu, Threads = options.Threads, Precision = options.Precision, CheckpointDir = dir, Resume = options.Resume,
                Collective = collective, LogEvery = 5, DropPath = augment ? 0.2 : 0, Mixup = augment ? 0.8 : 0, Cutmix = augment ? 1.0 : 0,
                Augmentation = augment ? new MaeAugmentationOptions { OutputSize = config.ImageSize }
                    : new MaeAugmentationOptions { OutputSize = config.ImageSize, RandomResizedCrop = false, HorizontalFlipProbability = 0 },
            };
            using var labeled = MaeLabeledImageSource.FromArrays(pixels, Enumerable.Range(0, images).Select(i => (long)(i % 4)), new MaeImageShape(3, config.ImageSize, config.ImageSize));
            var classifier = MaeFineTuner.FromScratch(config, 4, seed: 7);
            var r = new MaeFineTuner(ft).Train(classifier, labeled);
            (model, losses, steps, allReduce, elapsed, resumedFrom) = (classifier, r.StepLosses, r.GlobalSteps, r.AllReduceTime, r.Elapsed, r.ResumedFrom);
        }
        else if (a.TryGetValue("folder", out var folder))
        {
            var input = new MaeImageInputOptions { Augmentation = { OutputSize = config.ImageSize }, Workers = 2 };
            var source = MaeImageFileSource.FromFolder(folder, input);
            var mae = MaePretrainer.CreateModel(config, options);
            var r = new MaePretrainer(options).Train(mae, source);
            (model, losses, steps, allReduce, elapsed, resumedFrom) = (mae, r.StepLosses, r.GlobalSteps, r.AllReduceTime, r.Elapsed, r.ResumedFrom);
        }
        else
        {
            var data = MaeImageSource.FromArrays(pixels, 3, config.ImageSize, config.ImageSize);
            using var source = new FaultySource(data, collective.Rank, a.TryGetValue("fault", out var f) ? f : null);
            var mae = MaePretrainer.CreateModel(config, options);
            var r = new MaePretrainer(options).Train(mae, source);
            (model, losses, steps, allReduce, elapsed, resumedFrom) = (mae, r.StepLosses, r.GlobalSteps, r.AllReduceTime, r.Elapsed, r.ResumedFrom);
        }

        var parameters = model.named_parameters().ToList();
        if (collective.Rank == 0)
        {
            File.WriteAllText(output, TinyRun.FormatLosses(losses));
            File.WriteAllLines($"{output}.names", parameters.Select(p => string.Create(inv, $"{p.name} {p.parameter.numel()}")));
        }
        using (var all = cat(parameters.Select(p => p.parameter.detach().cpu().to(float32).flatten()).ToList()))
            File.WriteAllBytes($"{output}.weights.{collective.Rank}", all.bytes.ToArray());
        Console.Out.WriteLine(string.Create(inv, $"RANK {collective.Rank}/{collective.WorldSize} {collective.Name} steps={steps} " +
            $"allreduce_ms={allReduce.TotalMilliseconds:0.0} elapsed_ms={elapsed.TotalMilliseconds:0.0} resumed-from={resumedFrom ?? "-"}"));
        model.Dispose();
        return 0;
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    static int Length(string s) => s.Length; // a load through null: the hardware fault path, not an explicit check

    /// <summary>An in-memory source that, on one rank, dies or hangs at a given batch (the fault tests).</summary>
    sealed class FaultySource : IMaeImageSource, IDisposable
    {
        readonly MaeImageSource inner;
        readonly int failAt = -1;
        readonly string kind = "";
        int batches;

        public FaultySource(MaeImageSource inner, int rank, string? fault)
        {
            this.inner = inner;
            if (fault is null) return;
            var parts = fault.Split(':');
            if (int.Parse(parts[1], CultureInfo.InvariantCulture) != rank) return;
            kind = parts[0];
            failAt = int.Parse(parts[2], CultureInfo.InvariantCulture);
        }

        public long Count => inner.Count;
        public MaeImageShape Shape => inner.Shape;
        public bool ReadsShards => true;

        public IEnumerable<Tensor> Batches(MaeEpochPlan plan)
        {
            foreach (var batch in inner.Batches(plan))
            {
                if (++batches == failAt)
                {
                    batch.Dispose();
                    if (kind == "throw") throw new InvalidDataException("FAULT: this rank cannot decode its image");
                    Console.Error.WriteLine(kind == "hang" ? "FAULT: this rank hangs now" : "FAULT: this rank dies now");
                    Console.Error.Flush();
                    if (kind == "hang") Thread.Sleep(Timeout.Infinite);
                    System.Diagnostics.Process.GetCurrentProcess().Kill(); // SIGKILL: no MPI_Finalize, no exit handlers
                }
                yield return batch;
            }
        }

        public void Dispose() => inner.Dispose();
    }
}
