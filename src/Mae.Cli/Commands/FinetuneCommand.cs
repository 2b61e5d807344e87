using System.CommandLine;
using Mae.MLNet;
using Mae.MLNet.FineTuning;
using Mae.MLNet.Input;
using Mae.MLNet.Interop;
using Mae.MLNet.Model;
using Mae.MLNet.Training;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace Mae.Cli.Commands;

/// <summary>
/// <c>mae finetune --images DIR --weights W --out model.zip</c>: main_finetune.py's recipe (<c>MaeFineTune</c>) on a
/// class-per-sub-folder image folder. Training and validation images are read by the library's file source (bad files
/// named, or skipped with <c>--skip-bad-files</c>); the zip written reads a <c>Path</c> column (absolute paths) through
/// ML.NET's LoadImages → ResizeImages → ExtractPixels and gives <c>Score</c> and <c>PredictedLabel</c> (the class name),
/// with no <c>Label</c> column needed.
/// </summary>
public static class FinetuneCommand
{
    public static Command Create(CliContext context)
    {
        var images = CommonOptions.Images("Training images: one sub-folder per class (as torchvision's ImageFolder).");
        var validation = new Option<DirectoryInfo?>("--val-images") { Description = "Validation images, same layout: accuracy per epoch, best epoch kept." };
        var weights = CommonOptions.Weights(required: false);
        weights.Description += " Also ConvNeXt V2 weights (timm's convnextv2_*.fcmae, `mae pretrain --model convnextv2-*`'s convnextv2.safetensors, " +
                               "official checkpoints): told by their names, fine-tuned at --input-size (224 by default) with a new head.";
        var scratch = new Option<string?>("--from-scratch")
        {
            Description = "Instead of --weights: a randomly initialised model of this preset (vit presets, convnextv2-atto … " +
                          "convnextv2-huge) or config JSON (the paper's from-scratch control: the same fine-tuning without pre-training).",
        };
        var output = new Option<FileInfo>("--out") { Description = "The ML.NET model zip to write.", Required = true };
        // Defaults: the recipe for the weights' model (MaeFineTuneRecipe): main_finetune.py's defaults, or for models of
        // ≤ 64 px the official FINETUNE recipe scaled to small images (the values below in brackets).
        var epochs = new Option<int?>("--epochs") { Description = "Epochs (default 50 [100]; with --minutes: the most that fit, at most this)." };
        var warmup = new Option<double?>("--warmup-epochs", "--warmup_epochs") { Description = "Linear warm-up epochs (default: 5 per 50 [100] epochs, scaled with --epochs)." };
        var batch = new Option<int?>("--batch-size", "--batch_size") { Description = "Images per step (default 64 [128])." };
        var accum = new Option<int>("--accum-iter", "--accum_iter") { Description = "Steps per optimizer update.", DefaultValueFactory = _ => 1 };
        var blr = new Option<double?>("--blr") { Description = "Base learning rate: lr = blr × effective batch / 256 (default 1e-3 [4e-3])." };
        var layerDecay = new Option<double?>("--layer-decay", "--layer_decay") { Description = "Layer-wise lr decay (default 0.75)." };
        var dropPath = new Option<double?>("--drop-path", "--drop_path") { Description = "Stochastic depth rate (default 0.1 [0.1 × depth / 12])." };
        var smoothing = new Option<double?>("--smoothing") { Description = "Label smoothing (default 0.1)." };
        var mixup = new Option<double?>("--mixup") { Description = "Mixup alpha, 0 = off (default 0)." };
        var cutmix = new Option<double?>("--cutmix") { Description = "CutMix alpha, 0 = off (default 0)." };
        var randAugment = new Option<string?>("--aa")
        {
            Description = "RandAugment as a timm config, e.g. rand-m9-mstd0.5-inc1; none = off (default rand-m9-mstd0.5-inc1 [none]).",
        };
        var reprob = new Option<double?>("--reprob") { Description = "Random erasing probability, 0 = off (default 0.25 [0])." };
        var cropScale = new Option<double?>("--crop-scale")
        {
            Description = "Smallest RandomResizedCrop area, as a fraction of the image (default 0.08 [0.6]).",
        };
        var precision = CommonOptions.Precision();
        var minutes = CommonOptions.Minutes();
        var size = CommonOptions.ImageSize();
        var heads = CommonOptions.Heads();
        var device = CommonOptions.Device();
        var seed = CommonOptions.Seed();
        var workers = new Option<int>("--num-workers", "--num_workers") { Description = "Image decode workers.", DefaultValueFactory = _ => Environment.ProcessorCount };
        var skipBad = CommonOptions.SkipBadFiles();
        var checkpoints = new Option<DirectoryInfo?>("--checkpoint-dir")
        {
            Description = "Folder for checkpoints, one per epoch; only the latest and the best validation epoch's are kept (resume with --resume; " +
                          "Ctrl+C or SIGTERM writes one of the position reached). A .maeft file is accepted by --weights.",
        };
        var resume = CommonOptions.Resume("--checkpoint-dir");
        var progressSeconds = CommonOptions.ProgressSeconds();
        var command = new Command("finetune", "Fine-tune an MAE encoder (ViT, or ConvNeXt V2 after FCMAE) + linear head on labelled images; write an ML.NET model zip that scores image paths.")
        {
            images, validation, weights, scratch, output, epochs, warmup, batch, accum, blr, layerDecay, dropPath, smoothing, mixup, cutmix,
            randAugment, reprob, cropScale, size, heads, device, seed, workers, skipBad, checkpoints, resume, precision, minutes, progressSeconds,
        };
        command.SetAction(r =>
        {
            // The inputs first (folders, files, the output), then the recipe's numbers.
            string folder = r.GetValue(images)!.FullName;
            var rows = ImageFolder.List(folder, requireClasses: true);
            var valRows = r.GetValue(validation) is { } v ? ImageFolder.List(v.FullName, requireClasses: true) : null;
            string target = CliFiles.OutputFile(r.GetValue(output)!, "--out", rows.Concat(valRows ?? []).Select(x => x.Path).ToList(), ".zip");
            var (resuming, requireResume) = CommonOptions.ParseResume(r, resume);
            if (resuming && r.GetValue(checkpoints) is null) throw new CliException("--resume needs --checkpoint-dir.");
            // --resume=require: refused before the checkpoint folder is created or locked.
            if (requireResume && MaeFineTuneCheckpoint.FindLatest(r.GetValue(checkpoints)!.FullName) is null)
                throw MaeRunFolderException.NothingToResume(r.GetValue(checkpoints)!.FullName);
            string? checkpointDir = r.GetValue(checkpoints) is { } c ? CliFiles.OutputFolder(c, "--checkpoint-dir", folder) : null;
            string? scratchModel = r.GetValue(scratch);
            if ((r.GetValue(weights) is null) == (scratchModel is null))
                throw new CliException("finetune starts from --weights (pre-trained) or, as a control, from --from-scratch <model>; give exactly one.");
            using var weightsFile = scratchModel is null ? CliWeights.Resolve(r.GetValue(weights)!) : null;
            var headCounts = CommonOptions.ParseHeads(r.GetValue(heads));
            // A ConvNeXt V2 (a convnextv2 preset, or weights whose names are a ConvNeXt's: timm's *.fcmae, `mae pretrain
            // --model convnextv2-*`'s convnextv2.safetensors, official checkpoints) or a ViT; `config` is the ViT's config
            // or the ConvNeXt's image geometry, which the recipe, the input pipeline and the zip read.
            Mae.MLNet.Model.MaeConfig config;
            ConvNextV2Config? convNext = null;
            using var convNextEncoder = weightsFile is not null && MaeWeightFile.HoldsConvNextV2(weightsFile.Path)
                ? MaeWeightFile.LoadConvNextV2(weightsFile.Path, numClasses: 0) : null;
            if (convNextEncoder is not null)
                config = PretrainCommand.Geometry(convNext = ConvNextAt(convNextEncoder.Config, r.GetValue(size)));
            else if (weightsFile is null && scratchModel!.StartsWith("convnextv2", StringComparison.OrdinalIgnoreCase))
                config = PretrainCommand.Geometry(convNext = PretrainCommand.ResolveConvNext(scratchModel, r.GetValue(size), null, "--from-scratch"));
            else if (weightsFile is null) config = PretrainCommand.ResolveModel(scratchModel!, CommonOptions.CheckInputSize(r.GetValue(size)), "--from-scratch");
            else
                using (var file = MaeWeightFile.Read(weightsFile.Path, heads: headCounts))
                    config = r.GetValue(size) is int s ? (file.Config with { ImageSize = CommonOptions.CheckInputSize(s) }).Validate() : file.Config;
            // The recipe first, then every flag the user gave; the warm-up keeps the recipe's share of the epochs.
            var recipe = convNext is not null ? MaeFineTuneRecipe.For(convNext) : MaeFineTuneRecipe.For(config);
            var training = recipe.ApplyTo(new MaeFineTuneOptions(), config);
            training.Epochs = r.GetValue(epochs) ?? recipe.Epochs;
            training.WarmupEpochs = r.GetValue(warmup) ?? recipe.WarmupEpochs / recipe.Epochs * training.Epochs;
            training.BatchSize = CommonOptions.FitBatch(r.GetValue(batch), recipe.BatchSize, rows.Count, context.Output);
            training.AccumIter = r.GetValue(accum);
            training.BaseLearningRate = r.GetValue(blr) ?? recipe.BaseLearningRate;
            training.LayerDecay = r.GetValue(layerDecay) ?? recipe.LayerDecay;
            training.DropPath = r.GetValue(dropPath) ?? recipe.DropPath;
            training.LabelSmoothing = r.GetValue(smoothing) ?? recipe.LabelSmoothing;
            training.Mixup = r.GetValue(mixup) ?? recipe.Mixup;
            training.Cutmix = r.GetValue(cutmix) ?? recipe.Cutmix;
            string? aa = r.GetValue(randAugment) ?? recipe.RandAugment;
            try { training.Augmentation!.RandAugment = aa is null || aa == "none" ? null : MaeAugmentationOptions.RandAugmentOptions.Parse(aa); }
            catch (ArgumentException e) { throw new CliException($"--aa: {CliFlags.OneLine(e)}"); }
            training.Augmentation.RandomErasingProbability = r.GetValue(reprob) ?? recipe.RandomErasing;
            training.Augmentation.ScaleMin = r.GetValue(cropScale) ?? recipe.CropScaleMin;
            training.Precision = CommonOptions.ParsePrecision(r.GetValue(precision)!);
            training.Device = CommonOptions.ParseDevice(r.GetValue(device)!);
            training.Seed = r.GetValue(seed);
            training.CheckpointDir = checkpointDir;
            training.Resume = resuming;
            training.RequireResume = requireResume;
            training.LogEvery = 1;
            CliFlags.Check(() => training.Validate());
            CommonOptions.CheckBatchMemory(training.BatchSize, config);
            if (rows.Count < training.BatchSize)
                throw new CliException($"--images: '{folder}' has {rows.Count} image(s), fewer than one batch (--batch-size {training.BatchSize}); an epoch would have no step.");
            string? latest = training.Resume ? MaeFineTuneCheckpoint.FindLatest(checkpointDir!) : null;
            // Another batch size is refused by the fine-tuner itself (the checkpoint's steps per epoch would not match).
            string? resumeLine = training.Resume ? CliCheckpoints.ResumeLine(checkpointDir!, latest) : null;

            // Data parallel as `mae pretrain`: under mpirun / srun every rank fine-tunes on its shard of each epoch (the
            // global --batch-size split over the ranks, gradients averaged); rank 0 reports and writes the zip. One process
            // takes the same path with world size 1.
            var collective = MaeCollective.ForDevice(training.Device);
            training.Collective = collective;
            bool lead = collective.Rank == 0;
            bool skip = r.GetValue(skipBad);
            var progress = new CliProgress(context.Output, r.GetValue(progressSeconds), CliProgress.Terminal(lead));
            var ml = new MLContext(r.GetValue(seed));
            var train = ml.Data.LoadFromEnumerable(rows);
            var keys = ml.Transforms.Conversion.MapValueToKey(ImageFolder.LabelColumn).Fit(train);
            // The Path column (text) is the trainer's input: its files are decoded by the library's file source.
            MaeFineTuneTrainer Trainer(MaeFineTuneOptions t, IDataView? validationData, IProgress<MaeFineTuneProgress> report) =>
                ml.MulticlassClassification.Trainers.MaeFineTune(new MaeFineTuneTrainer.Options
                {
                    InputColumnName = ImageFolder.PathColumn, LabelColumnName = ImageFolder.LabelColumn,
                    // A ConvNeXt encoder gets a new head at the run's image size in each fit (also --minutes' trial fits).
                    ConvNextModel = convNextEncoder, WeightsPath = convNextEncoder is null ? weightsFile?.Path : null,
                    ImageSize = weightsFile is null ? null : config.ImageSize, Heads = weightsFile is null || convNextEncoder is not null ? null : headCounts,
                    FromScratch = weightsFile is null, Config = weightsFile is null && convNext is null ? config : null,
                    ConvNextConfig = weightsFile is null ? convNext : null,
                    ImageInput = new MaeImageInputOptions { Workers = r.GetValue(workers), SkipBadFiles = skip },
                    ValidationData = validationData, Training = t, Progress = report, Cancellation = context.Cancellation,
                });
            if (r.GetValue(minutes) is double box)
            {
                if (training.Resume) throw new CliException("--minutes plans a fresh run, and a resumed run keeps the plan it started with: use one of --minutes and --resume.");
                // Each rank would time its own steps and could plan a different epoch count: one process only.
                if (collective.WorldSize > 1) throw new CliException("--minutes plans one process's run; under mpirun give --epochs instead.");
                var plan = PlanFineTune(rows, valRows?.Count ?? 0, training, box,
                    (t, sample, timer) => Trainer(t, null, timer).Fit(keys.Transform(ml.Data.LoadFromEnumerable(sample))));
                (training.Epochs, training.WarmupEpochs, training.TimePlan) = (plan.Epochs, plan.WarmupEpochs, plan);
                if (lead) progress.Line(plan.Describe(training.BatchSize));
            }
            int classes = rows.Select(x => x.Label).Distinct().Count();
            string described = convNext is not null ? convNext.ToString() : CommonOptions.Describe(config);
            long steps = rows.Count / training.BatchSize;
            if (lead)
            {
                progress.Line($"finetune: {rows.Count} images in {classes} classes in '{folder}'" +
                              (valRows is null ? "" : $", {valRows.Count} validation images") + (skip ? " (bad files skipped)" : "") +
                              (weightsFile is null ? $"; from scratch (no pre-training): {described}"
                                                   : $"; weights '{r.GetValue(weights)!.FullName}': {described}"));
                progress.Line($"  {training.Epochs} epochs × {steps} steps of {training.BatchSize} images (effective batch {training.EffectiveBatchSize}), " +
                              $"lr {training.PeakLearningRate:G3} (blr {training.BaseLearningRate:G3}, layer decay {training.LayerDecay}), warm-up {training.WarmupEpochs:G3} epochs, " +
                              $"{CommonOptions.DescribeCompute(training.Precision, training.Device)}; checkpoints {(checkpointDir is null ? "none (--checkpoint-dir)" : $"'{checkpointDir}'")}");
                if (resumeLine is not null) progress.Line($"  {resumeLine}");
            }

            var classifier = Trainer(training, valRows is null ? null : keys.Transform(ml.Data.LoadFromEnumerable(valRows)),
                new FineTuneProgress(progress, checkpointDir)).Fit(keys.Transform(train));
            if (!lead) return 0;
            if (classifier.FineTuning is { } run) progress.Epochs(run.EpochsCompleted, run.EpochsCompleted, final: true);   // a time box's re-fit after the last report
            if (checkpointDir is not null) FineTuneProgress.Prune(checkpointDir, classifier.FineTuning?.BestEpoch);

            // The zip: ML.NET's own image loading into the pixels validation saw (the reference's resize + centre crop),
            // the classifier over them, the class name. Its input is a Path column alone: the head keeps the label's key
            // values from the schema it was made with (which has the key-typed Label), so scoring needs no Label column.
            var paths = ml.Data.LoadFromEnumerable(Array.Empty<PathRow>());
            var prep = ml.Transforms.MaeEvaluationPixels(ImageFolder.PixelsColumn, ImageFolder.PathColumn, config.ImageSize, config.InChannels).Fit(paths);
            var pixels = prep.Transform(keys.Transform(ml.Data.LoadFromEnumerable(Array.Empty<ImageFolder.Row>())));
            var scorer = classifier.WithInput(ImageFolder.PixelsColumn, pixels.Schema);
            var names = ml.Transforms.Conversion.MapKeyToValue("PredictedLabel").Fit(scorer.Transform(pixels));
            var model = new TransformerChain<ITransformer>(prep, scorer, names);
            CliFiles.WriteAtomically(target, temporary =>
            {
                ml.Model.Save(model, paths.Schema, temporary);
                ml.Model.Seal(temporary);   // every entry ML.NET will load, not only the graphs, verified at LoadVerified
            });
            foreach (var bad in classifier.FineTuning?.SkippedFiles ?? []) progress.Line($"skipped {bad.FileName}: {bad.Reason}");
            if (classifier.FineTuning is { BestEpoch: int best, BestValidationAccuracy: double accuracy })
                progress.Line($"best validation accuracy {accuracy:P1} after epoch {best + 1}{(classifier.FineTuning.RestoredBestWeights ? " (its weights are the zip's)" : "")}");
            progress.Line($"wrote {target}: {classes} classes, {rows.Count} training images; score it with a Path column of image files (no Label needed)");
            return 0;
        });
        return command;
    }

    /// <summary>A ConvNeXt V2's architecture at --input-size (224 by default, as timm's files are): a multiple of its
    /// total stride.</summary>
    static ConvNextV2Config ConvNextAt(ConvNextV2Config config, int? size)
    {
        try { return (config with { ImageSize = size is int s ? CommonOptions.CheckInputSize(s) : 224 }).Validate(); }
        catch (ArgumentException e) { throw new CliException($"--input-size: {e.Message}"); }
    }

    /// <summary>--minutes: times a few fine-tuning steps through the same pipeline on an evenly spread sample of the
    /// training images (every class in it), then plans the epochs that fit (MaeTimeBudget).</summary>
    static MaeTimeBudget.TimePlan PlanFineTune(List<ImageFolder.Row> rows, int validationImages, MaeFineTuneOptions training, double minutes,
        Action<MaeFineTuneOptions, List<ImageFolder.Row>, MaeTimeBudget.StepTimer> fit)
    {
        const int steps = 6, skip = 2;
        int want = Math.Min(rows.Count, (steps + skip + 1) * training.BatchSize);
        var sample = Enumerable.Range(0, want).Select(i => rows[(int)((long)i * rows.Count / want)]).ToList();
        var t = training.Clone();
        long perEpoch = Math.Max(1, sample.Count / t.BatchSize);
        (t.Epochs, t.WarmupEpochs, t.LogEvery, t.CheckpointDir, t.Resume, t.MetricsFile, t.TensorBoardDir) =
            ((int)Math.Max(1, (steps + skip + perEpoch - 1) / perEpoch), 0, 1, null, false, null, null);
        var timer = new MaeTimeBudget.StepTimer(steps + skip);
        fit(t, sample, timer);
        double seconds = MaeTimeBudget.SecondsPerStep(timer.Times, skip);
        // The validation pass after each epoch: a forward pass is about a third of a training step's work per image.
        double validation = validationImages * seconds / training.BatchSize / 3;
        return MaeTimeBudget.Plan(minutes, seconds, rows.Count / training.BatchSize, training.Epochs, training.WarmupEpochs / training.Epochs, validation);
    }

    /// <summary>The zip's input: image paths only.</summary>
    public sealed class PathRow
    {
        public string Path { get; set; } = "";
    }

    /// <summary>Progress through <see cref="CliProgress"/> (its ETA counts validation time); a line per epoch; the
    /// checkpoints of older epochs (but the best) and of earlier stops removed as newer ones are written.</summary>
    sealed class FineTuneProgress(CliProgress progress, string? checkpointDir) : IProgress<MaeFineTuneProgress>
    {
        public void Report(MaeFineTuneProgress p)
        {
            long total = p.StepsPerEpoch * p.Epochs;
            progress.Epochs(p.Epochs, p.Epoch);
            if (!p.EndOfEpoch)
            {
                progress.Report(p.GlobalStep, total, $"epoch {p.Epoch + 1}/{p.Epochs} step {p.Step + 1}/{p.StepsPerEpoch}",
                    $"loss {p.Loss:F4}  lr {p.LearningRate:G3}  {p.ImagesPerSecond:F0} img/s");
                return;
            }
            progress.Line($"epoch {p.Epoch + 1}/{p.Epochs}  loss {p.EpochLoss:F4}" + (p.ValidationAccuracy is double a ? $"  val acc {a:P1}" : "") +
                          $"  {p.ImagesPerSecond:F0} img/s  elapsed {CliProgress.Format(progress.Elapsed)}  eta {CliProgress.Format(progress.Eta(p.GlobalStep, total))}");
            if (checkpointDir is not null) Prune(checkpointDir, p.BestEpoch);
        }

        /// <summary>Keeps the latest checkpoint and the best validation epoch's (file NNNN = epochs completed = best + 1).</summary>
        public static void Prune(string folder, int? bestEpoch)
            => CliCheckpoints.Prune(folder, MaeFineTuneCheckpoint.FilePrefix, MaeFineTuneCheckpoint.FileExtension, MaeFineTuneCheckpoint.FindLatest,
                bestEpoch is int b ? new HashSet<int> { b + 1 } : new HashSet<int>());
    }
}
