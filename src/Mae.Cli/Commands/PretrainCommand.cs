using System.CommandLine;
using Mae.MLNet.Input;
using Mae.MLNet.Interop;
using Mae.MLNet.Model;
using Mae.MLNet.Training;
using Mae.MLNet.Pretraining;
using Mae.MLNet.Runtime;
using Mae.MLNet.Visualization;

namespace Mae.Cli.Commands;

/// <summary>
/// <c>mae pretrain --images DIR --model vit-b16 --epochs 400 --output-dir run</c>: main_pretrain.py's recipe
/// (<see cref="MaePretrainer"/>) on a folder of images, read by <see cref="MaeImageFileSource"/>. The output folder gets atomic checkpoints (resume with
/// <c>--resume</c>), <c>metrics.jsonl</c>, TensorBoard logs with <c>--log-dir</c>, reconstructions of images spread over
/// the folder every <c>--recon-every</c> epochs (<c>reconstructions/epoch-NNNN.png</c>, the same images and masks each
/// time), and at the end <c>mae.safetensors</c> + <c>mae.json</c> (which <c>--model</c> reads back). Ctrl+C stops after the step in progress with a checkpoint of that position;
/// <c>--resume</c> continues exactly from there.
/// </summary>
public static class PretrainCommand
{
    public static Command Create(CliContext context)
    {
        var images = CommonOptions.Images("A folder of images (sub-folders are read too; labels are ignored).");
        var model = new Option<string?>("--model")
        {
            Description = "A preset (vit-b16, vit-l16, vit-h14, tiny32, nano32, nano32-p2, pico32, mnist28, or the official mae_vit_base_patch16 …; " +
                          "convnextv2-atto … convnextv2-huge pre-trains ConvNeXt V2 with FCMAE, 224 px unless --input-size, a multiple of 32) or a config JSON file: " +
                          "the <name>.json this tool writes beside its weights (e.g. <output-dir>/mae.json), a Hugging Face config.json, or a MaeConfig " +
                          "(default: chosen from the images' size and printed: nano32 for small colour images on a CPU).",
        };
        var inputSize = new Option<int?>("--input-size", "--input_size") { Description = $"Image size (default: the model's; at most {CommonOptions.MaxInputSize})." };
        var epochs = new Option<int?>("--epochs") { Description = "Epochs (default: the recipe's, 400; with --minutes: the most that fit, at most this)." };
        var warmup = new Option<double?>("--warmup-epochs", "--warmup_epochs") { Description = "Linear warm-up epochs (default: the recipe's 10 % of the epochs)." };
        var batch = new Option<int?>("--batch-size", "--batch_size") { Description = "Images per step (default: the recipe's: 256 for models of ≤ 64 px, else 64)." };
        var accum = new Option<int>("--accum-iter", "--accum_iter") { Description = "Steps per optimizer update (effective batch = batch-size × accum-iter).", DefaultValueFactory = _ => 1 };
        var blr = new Option<double?>("--blr") { Description = "Base learning rate: lr = blr × effective batch / 256 (default: the recipe's: 2e-3 for models of ≤ 64 px, else the paper's 1.5e-4)." };
        var lr = new Option<double?>("--lr") { Description = "Absolute learning rate (overrides --blr)." };
        var minLr = new Option<double>("--min-lr", "--min_lr") { Description = "Floor of the cosine schedule.", DefaultValueFactory = _ => 0 };
        var weightDecay = new Option<double>("--weight-decay", "--weight_decay") { Description = "AdamW weight decay.", DefaultValueFactory = _ => 0.05 };
        var maskRatio = new Option<double>("--mask-ratio", "--mask_ratio")
        {
            Description = "Fraction of patches removed (default 0.75; 0.6, the official FCMAE ratio, for convnextv2-*).", DefaultValueFactory = _ => 0.75,
        };
        var normPix = new Option<bool?>("--norm-pix-loss", "--norm_pix_loss")
        {
            Description = "Per-patch normalised pixels as the target, true or false (default: the model's; every preset says true, the paper's choice).",
            Arity = ArgumentArity.ZeroOrOne,
        };
        var precision = CommonOptions.Precision();
        var minutes = CommonOptions.Minutes();
        var device = CommonOptions.Device();
        var seed = CommonOptions.Seed();
        var outDir = new Option<DirectoryInfo>("--output-dir", "--output_dir", "--out")
        {
            Description = "Folder for checkpoints, metrics, pictures and the final weights (mae.safetensors + mae.json); not the --images folder nor inside it.",
            Required = true,
        };
        var logDir = new Option<DirectoryInfo?>("--log-dir", "--log_dir") { Description = "TensorBoard folder (optional)." };
        var resume = CommonOptions.Resume("the output folder");
        var checkpointEvery = new Option<int>("--checkpoint-every")
        {
            Description = "Epochs between checkpoints (the last epoch always writes one; a stop writes one of its position, removed once a later epoch's is written).",
            DefaultValueFactory = _ => 20,
        };
        var workers = new Option<int>("--num-workers", "--num_workers") { Description = "Image decode workers.", DefaultValueFactory = _ => Environment.ProcessorCount };
        var skipBad = CommonOptions.SkipBadFiles();
        var objective = new Option<string>("--objective") { Description = "mae (the paper), or contrastive (MAE + InfoNCE between two views, CAN).", DefaultValueFactory = _ => "mae" };
        objective.AcceptOnlyFromAmong("mae", "contrastive");
        var contrastiveWeight = new Option<double>("--contrastive-weight") { Description = "Weight of the InfoNCE term (--objective contrastive).", DefaultValueFactory = _ => 0.1 };
        var reconEvery = new Option<int>("--recon-every")
        {
            Description = $"Epochs between reconstruction pictures of {ReconstructionPictures.Count} images spread over the folder (fixed masks) in " +
                          "<output-dir>/reconstructions/; the last epoch always draws one; 0: none.",
            DefaultValueFactory = _ => 20,
        };
        var progressSeconds = CommonOptions.ProgressSeconds();
        var command = new Command("pretrain", "Pre-train a masked autoencoder on a folder of images (main_pretrain.py's recipe); writes <output-dir>/mae.safetensors.")
        {
            images, model, inputSize, epochs, warmup, batch, accum, blr, lr, minLr, weightDecay, maskRatio, normPix, precision, device, seed,
            outDir, logDir, resume, checkpointEvery, workers, skipBad, objective, contrastiveWeight, reconEvery, minutes, progressSeconds,
        };
        command.SetAction(r =>
        {
            // The inputs first (the folder, its images, the output folder), then the model, then the recipe's numbers.
            string folder = r.GetValue(images)!.FullName;
            var files = MaeImageFolder.ListImages(folder);
            // --resume=require: refused before the output folder is created or locked.
            var (resuming, requireResume) = CommonOptions.ParseResume(r, resume);
            if (requireResume && MaePretrainCheckpoint.FindLatest(r.GetValue(outDir)!.FullName) is null)
                throw MaeRunFolderException.NothingToResume(r.GetValue(outDir)!.FullName);
            string output = CliFiles.OutputFolder(r.GetValue(outDir)!, "--out", folder);
            // ConvNeXt V2 (FCMAE) or the ViT MAE: the same recipe, input pipeline, engine and files; `config` is the ViT's
            // config or, for FCMAE, the image geometry the recipe and input pipeline read.
            var convNext = r.GetValue(model) is { } cn && cn.StartsWith("convnextv2", StringComparison.OrdinalIgnoreCase)
                ? ResolveConvNext(cn, r.GetValue(inputSize), r.GetValue(normPix)) : null;
            var resolved = convNext is not null ? Geometry(convNext)
                : r.GetValue(model) is { } named ? ResolveModel(named, r.GetValue(inputSize))
                : ChooseModel(folder, r.GetValue(inputSize), CommonOptions.ParseDevice(r.GetValue(device)!), context.Output);
            var config = r.GetValue(normPix) is bool target ? resolved with { NormPixLoss = target } : resolved;
            var recipe = MaePretrainRecipe.For(config);
            // FCMAE's mask ratio is the official 0.6 unless given.
            double mask = convNext is not null && r.GetResult(maskRatio) is null or { Implicit: true } ? 0.6 : r.GetValue(maskRatio);
            var options = new MaePretrainOptions
            {
                Epochs = r.GetValue(epochs) ?? recipe.Epochs,
                WarmupEpochs = r.GetValue(warmup) ?? recipe.WarmupEpochs / recipe.Epochs * (r.GetValue(epochs) ?? recipe.Epochs),
                BatchSize = CommonOptions.FitBatch(r.GetValue(batch), recipe.BatchSize, files.Count, context.Output), AccumIter = r.GetValue(accum),
                BaseLearningRate = r.GetValue(blr) ?? recipe.BaseLearningRate, LearningRate = r.GetValue(lr), MinLearningRate = r.GetValue(minLr),
                WeightDecay = r.GetValue(weightDecay), MaskRatio = mask,
                Precision = CommonOptions.ParsePrecision(r.GetValue(precision)!),
                Device = CommonOptions.ParseDevice(r.GetValue(device)!), Seed = r.GetValue(seed),
                CheckpointDir = output, CheckpointEvery = r.GetValue(checkpointEvery), Resume = resuming, RequireResume = requireResume,
                MetricsFile = Path.Combine(output, "metrics.jsonl"), TensorBoardDir = r.GetValue(logDir)?.FullName,
                Objective = r.GetValue(objective) == "contrastive" ? MaeObjective.Contrastive : MaeObjective.Mae,
                ContrastiveWeight = r.GetValue(contrastiveWeight),
            };
            // Under `mpirun -np N` / `srun --mpi=pmix` every rank trains on its shard of each epoch (data parallel, NCCL on
            // CUDA; rank 0 writes the checkpoints, metrics and the final weights). One process takes the same collective
            // path (world size 1), so it equals N ranks accumulating N batches: the same command resumes at any size.
            var collective = MaeCollective.ForDevice(options.Device);
            options.Collective = collective;
            bool lead = collective.Rank == 0;
            using var folderLock = lead ? MaeRunFolderLock.Acquire(output) : null;   // held until the final weights are written
            CliFlags.Check(() => { if (convNext is not null) options.Validate(convNext); else options.Validate(config); });
            CommonOptions.CheckBatchMemory(options.BatchSize, config);
            if (files.Count < options.BatchSize)
                throw new CliException($"--images: '{folder}' has {files.Count} image(s), fewer than one batch (--batch-size {options.BatchSize}); an epoch would have no step.");
            int every = r.GetValue(reconEvery);
            if (every < 0) throw new CliException($"--recon-every must be 0 (none) or a number of epochs; got {every}.");
            string? latest = options.Resume ? MaePretrainCheckpoint.FindLatest(output) : null;
            var progress = new CliProgress(context.Output, r.GetValue(progressSeconds), CliProgress.Terminal(lead));
            // Another batch size is refused by the pre-trainer itself (the checkpoint's steps per epoch would not match).
            string? resumeLine = options.Resume ? CliCheckpoints.ResumeLine(output, latest) : null;

            // The paper's input pipeline on the files themselves: RandomResizedCrop (the recipe's scale: 0.2–1, or 0.35–1 at
            // ≤ 64 px) on the original, flip, normalise, in parallel decode workers, deterministic from (seed, epoch, image).
            bool skip = r.GetValue(skipBad);
            var source = MaeImageFileSource.FromPaths(files, new MaeImageInputOptions
            {
                Augmentation = recipe.Augmentation(config),
                Workers = r.GetValue(workers), SkipBadFiles = skip,
            });
            if (r.GetValue(minutes) is double box)
            {
                if (options.Resume) throw new CliException("--minutes plans a fresh run, and a resumed run keeps the plan it started with: use one of --minutes and --resume.");
                // Each rank would time its own steps and could plan a different epoch count: one process only.
                if (collective.WorldSize > 1) throw new CliException("--minutes plans one process's run; under mpirun give --epochs instead.");
                double seconds = convNext is not null
                    ? MaePretrainer.CalibrateStepSeconds(convNext, options, source, cancellationToken: context.Cancellation)
                    : MaePretrainer.CalibrateStepSeconds(config, options, source, cancellationToken: context.Cancellation);
                var plan = MaeTimeBudget.Plan(box, seconds, source.Count / options.BatchSize, options.Epochs, options.WarmupEpochs / options.Epochs);
                (options.Epochs, options.WarmupEpochs, options.TimePlan) = (plan.Epochs, plan.WarmupEpochs, plan);
                if (lead) progress.Line(plan.Describe(options.BatchSize));
            }
            long steps = files.Count / options.BatchSize;
            if (lead)
            {
                progress.Line($"pretrain: {files.Count} images in '{folder}'{(skip ? " (bad files skipped)" : "")}; model {(convNext is not null ? $"FCMAE, {convNext}" : CommonOptions.Describe(config))}");
                progress.Line($"  {options.Epochs} epochs × {steps} steps of {options.BatchSize} images (effective batch {options.EffectiveBatchSize}), " +
                              $"lr {options.PeakLearningRate:G3}{(options.LearningRate is null ? $" (blr {options.BaseLearningRate:G3})" : "")}, " +
                              $"warm-up {options.WarmupEpochs:G3} epochs, mask ratio {options.MaskRatio}, {CommonOptions.DescribeCompute(options.Precision, options.Device)}; output '{output}'");
                if (resumeLine is not null) progress.Line($"  {resumeLine}");
            }
            if (convNext is not null) return PretrainFcmae(convNext, options, source, progress, output, lead, skip, every, files, context);
            using var mae = MaePretrainer.CreateModel(config, options);
            using var pictures = lead && every > 0
                ? new ReconstructionPictures(mae, files, Path.Combine(output, "reconstructions"), every, options.MaskRatio, options.Seed, skip) : null;
            var reporter = new PretrainProgress(progress, pictures, output);
            var result = new MaePretrainer(options).Train(mae, source, reporter, context.Cancellation);

            if (!lead) return 0;
            string weights = Path.Combine(output, "mae.safetensors");
            Finish(progress, output, result, source, pictures, weights, () => MaeWeightFile.Save(mae, weights),
                   $"+ mae.json, its config: --model {Path.ChangeExtension(weights, ".json")} builds the same model");
            return 0;
        });
        return command;
    }

    /// <summary>The FCMAE run, with its reconstruction pictures; writes <c>convnextv2.safetensors</c>, the encoder
    /// under timm's names (with <c>head.norm</c> at 1, 0, as timm loads fcmae weights), which MaeWeightFile.LoadConvNextV2 reads.</summary>
    static int PretrainFcmae(ConvNextV2Config config, MaePretrainOptions options, MaeImageFileSource source, CliProgress progress, string output,
        bool lead, bool skip, int every, IReadOnlyList<string> files, CliContext context)
    {
        using var fcmae = MaePretrainer.CreateModel(config, options);
        using var pictures = lead && every > 0
            ? new ReconstructionPictures(fcmae, files, Path.Combine(output, "reconstructions"), every, options.MaskRatio, options.Seed, skip) : null;
        var reporter = new PretrainProgress(progress, pictures, output);
        var result = new MaePretrainer(options).Train(fcmae, source, reporter, context.Cancellation);
        if (!lead) return 0;
        string weights = Path.Combine(output, "convnextv2.safetensors");
        Finish(progress, output, result, source, pictures, weights, () =>
        {
            using var encoder = fcmae.ToEncoder();
            MaeWeightFile.SaveConvNextV2(encoder, weights);
        }, "the ConvNeXt V2 encoder, timm's names");
        return 0;
    }

    /// <summary>The end of a finished run on rank 0, either model: earlier stops' position files pruned, the weights
    /// written by <paramref name="save"/>, every skipped file named, and the summary line.</summary>
    static void Finish(CliProgress progress, string output, MaePretrainResult result, MaeImageFileSource source, ReconstructionPictures? pictures,
        string weights, Action save, string written)
    {
        progress.Epochs(result.EpochsCompleted, result.EpochsCompleted, final: true);   // a time box's re-fit after the last report
        CliCheckpoints.Prune(output, MaePretrainCheckpoint.FilePrefix, MaePretrainCheckpoint.FileExtension, MaePretrainCheckpoint.FindLatest, null);
        save();
        foreach (var skipped in source.SkippedFiles.Concat(pictures?.Skipped ?? []).DistinctBy(x => x.FileName))
            progress.Line($"skipped {skipped.FileName}: {skipped.Reason}");
        progress.Line($"pre-trained {result.EpochsCompleted} epochs ({result.GlobalSteps} steps" +
                      (result.ResumedFrom is null ? "" : $", resumed from {Path.GetFileName(result.ResumedFrom)}") +
                      $"); last epoch loss {result.EpochLosses[^1]:F4}; wrote {weights} ({written})");
    }

    /// <summary>A ConvNeXt V2 preset at <paramref name="inputSize"/> (224 by default), with the loss target given.</summary>
    internal static ConvNextV2Config ResolveConvNext(string name, int? inputSize, bool? normPix, string flag = "--model")
    {
        try
        {
            var config = ConvNextV2Config.Preset(name) with { ImageSize = inputSize is int s ? CommonOptions.CheckInputSize(s) : 224 };
            return (normPix is bool n ? config with { NormPixLoss = n } : config).Validate();
        }
        catch (ArgumentException e) { throw new CliException($"{flag}: {e.Message}"); }
    }

    /// <summary>The image geometry of a ConvNeXt V2 run, for the recipe, the input pipeline and the memory check.</summary>
    internal static MaeConfig Geometry(ConvNextV2Config c) => new() { ImageSize = c.ImageSize, InChannels = c.InChannels, PatchSize = c.TotalStride, NormPixLoss = c.NormPixLoss };

    /// <summary>No --model: the preset for the folder's images (a few headers read), said on the output.</summary>
    static MaeConfig ChooseModel(string folder, int? inputSize, Mae.MLNet.Runtime.MaeDevice device, TextWriter output)
    {
        bool cuda = device != Mae.MLNet.Runtime.MaeDevice.Cpu && Mae.MLNet.Runtime.TorchRuntime.CudaAvailable;
        var (choice, sample) = MaeImageFolder.ChoosePreset(folder, cuda);
        var config = inputSize is int s ? choice.Config with { ImageSize = s } : choice.Config;
        output.WriteLine($"model: {choice.Name}, {config.ImageSize} px — {choice.Reason} (median shorter side of {sample.Files} sampled images); --model chooses another");
        try { return config.Validate(); }
        catch (ArgumentException e) { throw new CliException($"--input-size: {e.Message}"); }
    }

    /// <summary>A preset name or a JSON <see cref="MaeConfig"/> file, at <paramref name="inputSize"/> when given.</summary>
    internal static MaeConfig ResolveModel(string model, int? inputSize, string flag = "--model")
    {
        MaeConfig config;
        if (model.EndsWith(".json", StringComparison.OrdinalIgnoreCase))
        {
            if (!File.Exists(model)) throw new CliException($"{flag}: the config file '{model}' does not exist.");
            // Any config this library reads — the one written beside mae.safetensors included; an unknown key is an error.
            try { config = MaeWeightFile.ReadConfig(model); }
            catch (Exception e) when (e is MaeModelFileException or ArgumentException) { throw new CliException($"{flag}: {CliFlags.OneLine(e)}"); }
        }
        else
        {
            string name = model.StartsWith("mae_", StringComparison.Ordinal) ? model["mae_".Length..].Split("_dec")[0] : model;
            try { config = MaeConfig.Preset(name); }
            catch (ArgumentException e) { throw new CliException($"{flag}: {e.Message}"); }
        }
        if (inputSize is int s) config = config with { ImageSize = CommonOptions.CheckInputSize(s) };
        try { return config.Validate(); }
        catch (ArgumentException e) { throw new CliException($"{flag}: {e.Message}"); }
    }

    /// <summary>Progress through <see cref="CliProgress"/>; at each epoch's end a line (loss, lr, speed, elapsed, ETA),
    /// the reconstruction picture when due, and the position files of earlier stops removed.</summary>
    sealed class PretrainProgress(CliProgress progress, ReconstructionPictures? pictures, string folder) : IProgress<MaePretrainProgress>
    {
        public void Report(MaePretrainProgress p)
        {
            if (p.EndOfEpoch) return;   // the kNN monitor's extra report
            progress.Epochs(p.Epochs, p.Epoch);
            string details = $"loss {p.Loss:F4}  lr {p.LearningRate:G3}  {p.ImagesPerSecond:F0} img/s";
            if (p.Step + 1 != p.StepsPerEpoch)
            {
                progress.Report(p.GlobalStep, p.StepsPerEpoch * p.Epochs, $"epoch {p.Epoch + 1}/{p.Epochs} step {p.Step + 1}/{p.StepsPerEpoch}", details);
                return;
            }
            progress.Line($"epoch {p.Epoch + 1}/{p.Epochs}  last-step {details}  elapsed {CliProgress.Format(progress.Elapsed)}  " +
                          $"eta {CliProgress.Format(progress.Eta(p.GlobalStep, p.StepsPerEpoch * p.Epochs))}");
            if (pictures?.Draw(p.Epoch, p.Epochs) is { } written) progress.Line($"  reconstructions: {written}");
            CliCheckpoints.Prune(folder, MaePretrainCheckpoint.FilePrefix, MaePretrainCheckpoint.FileExtension, MaePretrainCheckpoint.FindLatest, null);
        }
    }

    /// <summary>Reconstructions of the same images under the same masks after every <c>every</c>-th epoch and the last:
    /// the model's progress at a glance. The images are spread evenly over the folder's sorted list (so a class-per-folder
    /// set shows several classes); with <c>skip</c> a bad one is replaced by the next readable file. The masks come from
    /// a managed generator, so drawing never moves libtorch's generator that training draws its masks from (a run with
    /// pictures trains exactly as one without).</summary>
    internal sealed class ReconstructionPictures : IDisposable
    {
        public const int Count = 8;
        readonly Func<TorchSharp.torch.Tensor, TorchSharp.torch.Tensor, MaeReconstruction.Result> compute;
        readonly TorchSharp.torch.nn.Module model;   // its device when drawing: training moves it
        readonly string folder;
        readonly int every;
        readonly TorchSharp.torch.Tensor images, noise;
        readonly Mae.MLNet.Model.PixelNormalization norm;

        public ReconstructionPictures(MaskedAutoencoder model, IReadOnlyList<string> files, string folder, int every, double maskRatio, long seed, bool skip)
            : this(model, model.Config, model.Config.NumPatches, (x, noise) => MaeReconstruction.Compute(model, x, maskRatio, noise), files, folder, every, seed, skip) { }

        /// <summary>FCMAE's pictures: its masks of 32-px cells, its decoder's output (<see cref="MaeReconstruction"/>).</summary>
        public ReconstructionPictures(Fcmae model, IReadOnlyList<string> files, string folder, int every, double maskRatio, long seed, bool skip)
            : this(model, Geometry(model.Config), model.NumPatches, (x, noise) => MaeReconstruction.Compute(model, x, maskRatio, noise), files, folder, every, seed, skip) { }

        ReconstructionPictures(TorchSharp.torch.nn.Module model, MaeConfig geometry, int patches,
            Func<TorchSharp.torch.Tensor, TorchSharp.torch.Tensor, MaeReconstruction.Result> compute,
            IReadOnlyList<string> files, string folder, int every, long seed, bool skip)
        {
            this.compute = compute;
            this.model = model;
            this.folder = folder;
            this.every = every;
            using (var scope = TorchSharp.torch.NewDisposeScope())
            {
                (images, norm, Skipped) = ReconstructCommand.SpreadImages(files, Count, geometry, skip);
                images = images.MoveToOuterDisposeScope();
            }
            var random = new Random(unchecked((int)seed));
            int n = (int)images.shape[0];
            noise = TorchSharp.torch.tensor(Enumerable.Range(0, n * patches).Select(_ => random.NextSingle()).ToArray(), new long[] { n, patches });
        }

        /// <summary>Bad files met while reading the picture's images (with skipping on).</summary>
        public IReadOnlyList<MaeImageFileSource.SkippedFile> Skipped { get; }

        /// <summary>Draws after epoch <paramref name="epoch"/> (0-based) when it is due; returns the file or null.</summary>
        public string? Draw(int epoch, int epochs)
        {
            if ((epoch + 1) % every != 0 && epoch + 1 != epochs) return null;
            Directory.CreateDirectory(folder);
            string path = Path.Combine(folder, $"epoch-{epoch + 1:D4}.png");
            using var masks = noise.to(model.parameters().First().device);
            using var result = compute(images, masks);
            ReconstructionGrid.SavePng(path, result, norm);
            return path;
        }

        public void Dispose()
        {
            images.Dispose();
            noise.Dispose();
        }
    }
}
