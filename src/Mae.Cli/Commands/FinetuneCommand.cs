using System.CommandLine;
using Mae.MLNet;
using Mae.MLNet.FineTuning;
using Mae.MLNet.Training;
using Microsoft.ML;
using Mae.MLNet.Interop;
using Mae.MLNet.Model;

namespace Mae.Cli.Commands;

/// <summary>
/// <c>mae finetune --images DIR --weights W --out model.zip</c>: main_finetune.py's recipe (<c>MaeFineTune</c>) on a
/// class-per-sub-folder image folder; writes an ML.NET model zip that reads image paths (relative to the training
/// folder, or absolute) and gives <c>Score</c> and <c>PredictedLabel</c> (the class name).
/// </summary>
public static class FinetuneCommand
{
    public static Command Create(CliContext context)
    {
        var images = CommonOptions.Images("Training images: one sub-folder per class (as torchvision's ImageFolder).");
        var validation = new Option<DirectoryInfo?>("--val-images") { Description = "Validation images, same layout: accuracy per epoch, best epoch kept." };
        var weights = CommonOptions.Weights(required: true);
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
        var mixup = new Option<double?>("--mixup") { Description = "Mixup alpha, 0 = off (default 0 [0.4])." };
        var cutmix = new Option<double?>("--cutmix") { Description = "CutMix alpha, 0 = off (default 0 [0.5])." };
        var precision = CommonOptions.Precision();
        var minutes = CommonOptions.Minutes();
        var size = CommonOptions.ImageSize();
        var heads = CommonOptions.Heads();
        var device = CommonOptions.Device();
        var seed = CommonOptions.Seed();
        var checkpoints = new Option<DirectoryInfo?>("--checkpoint-dir") { Description = "Folder for checkpoints (resume with --resume)." };
        var resume = new Option<bool>("--resume") { Description = "Continue from the latest checkpoint in --checkpoint-dir." };
        var command = new Command("finetune", "Fine-tune an MAE encoder + linear head on labelled images; write an ML.NET model zip.")
        {
            images, validation, weights, output, epochs, warmup, batch, accum, blr, layerDecay, dropPath, smoothing, mixup, cutmix,
            size, heads, device, seed, checkpoints, resume, precision, minutes,
        };
        command.SetAction(r =>
        {
            string path = CommonOptions.InputFile(r.GetValue(weights)!, "--weights");
            string target = CommonOptions.OutputFile(r.GetValue(output)!, "--out", ".zip");
            if (r.GetValue(resume) && r.GetValue(checkpoints) is null) throw new CliException("--resume needs --checkpoint-dir.");
            string folder = r.GetValue(images)!.FullName;
            var rows = ImageFolder.List(folder, requireClasses: true);
            var ml = new MLContext(r.GetValue(seed));
            int imageSize, channels;
            Mae.MLNet.Model.MaeConfig config;
            var headCounts = CommonOptions.ParseHeads(r.GetValue(heads));
            using (var file = Mae.MLNet.Interop.MaeWeightFile.Read(path, heads: headCounts))
                (imageSize, channels, config) = (r.GetValue(size) ?? file.Config.ImageSize, file.Config.InChannels, file.Config);
            config = config with { ImageSize = imageSize };
            // The recipe first, then every flag the user gave; the warm-up keeps the recipe's share of the epochs.
            var recipe = MaeFineTuneRecipe.For(config);
            var training = recipe.ApplyTo(new MaeFineTuneOptions(), config);
            training.Epochs = r.GetValue(epochs) ?? recipe.Epochs;
            training.WarmupEpochs = r.GetValue(warmup) ?? recipe.WarmupEpochs / recipe.Epochs * training.Epochs;
            training.BatchSize = r.GetValue(batch) ?? recipe.BatchSize;
            training.AccumIter = r.GetValue(accum);
            training.BaseLearningRate = r.GetValue(blr) ?? recipe.BaseLearningRate;
            training.LayerDecay = r.GetValue(layerDecay) ?? recipe.LayerDecay;
            training.DropPath = r.GetValue(dropPath) ?? recipe.DropPath;
            training.LabelSmoothing = r.GetValue(smoothing) ?? recipe.LabelSmoothing;
            training.Mixup = r.GetValue(mixup) ?? recipe.Mixup;
            training.Cutmix = r.GetValue(cutmix) ?? recipe.Cutmix;
            training.Precision = CommonOptions.ParsePrecision(r.GetValue(precision)!);
            training.Device = CommonOptions.ParseDevice(r.GetValue(device)!);
            training.Seed = r.GetValue(seed);
            training.CheckpointDir = r.GetValue(checkpoints)?.FullName;
            training.Resume = r.GetValue(resume);
            var train = ml.Data.LoadFromEnumerable(rows);
            var val = r.GetValue(validation) is { } v ? ml.Data.LoadFromEnumerable(ImageFolder.List(v.FullName, requireClasses: true)) : null;

            // The paths are absolute, so the zip's LoadImages needs no folder of its own.
            var prep = ImageFolder.Pixels(ml, "", imageSize, channels);
            var keys = ml.Transforms.Conversion.MapValueToKey(ImageFolder.LabelColumn);
            // Data parallel as `mae pretrain`: under mpirun / srun every rank fine-tunes on its shard of each epoch (the
            // global --batch-size split over the ranks, gradients averaged); rank 0 writes the zip. One process takes the
            // same path with world size 1.
            var collective = Mae.MLNet.Training.MaeCollective.ForDevice(training.Device);
            training.Collective = collective;
            IEstimator<ITransformer> Pipeline(MaeFineTuneOptions t, IDataView? validationData, IProgress<MaeFineTuneProgress> progress) =>
                keys.Append(prep).Append(ml.MulticlassClassification.Trainers.MaeFineTune(new MaeFineTuneTrainer.Options
                {
                    InputColumnName = ImageFolder.PixelsColumn, LabelColumnName = ImageFolder.LabelColumn, WeightsPath = path, ImageSize = imageSize, Heads = headCounts,
                    ValidationData = validationData, Training = t, Progress = progress,
                })).Append(ml.Transforms.Conversion.MapKeyToValue("PredictedLabel"));
            if (r.GetValue(minutes) is double box)
            {
                if (training.Resume) throw new CliException("--minutes plans a fresh run, and a resumed run keeps the plan it started with: use one of --minutes and --resume.");
                // Each rank would time its own steps and could plan a different epoch count: one process only.
                if (collective.WorldSize > 1) throw new CliException("--minutes plans one process's run; under mpirun give --epochs instead.");
                int validationImages = r.GetValue(validation) is { } vf ? ImageFolder.List(vf.FullName, requireClasses: true).Count : 0;
                var plan = PlanFineTune(rows, validationImages, training, box, (t, sample, timer) => Pipeline(t, null, timer).Fit(ml.Data.LoadFromEnumerable(sample)));
                (training.Epochs, training.WarmupEpochs) = (plan.Epochs, plan.WarmupEpochs);
                context.Output.WriteLine(plan.Describe(training.BatchSize));
            }
            var model = Pipeline(training, val is null ? null : keys.Append(prep).Fit(train).Transform(val), new EpochLines(context.Output)).Fit(train);
            if (collective.Rank != 0) return 0;
            string temporary = Path.Combine(Path.GetDirectoryName(target)!, $".{Path.GetFileName(target)}.tmp-{Guid.NewGuid():N}");
            try
            {
                ml.Model.Save(model, train.Schema, temporary);
                File.Move(temporary, target, overwrite: true);
            }
            finally { if (File.Exists(temporary)) File.Delete(temporary); }
            context.Output.WriteLine($"wrote {target}: {rows.Select(x => x.Label).Distinct().Count()} classes, {rows.Count} training images");
            return 0;
        });
        return command;
    }

    /// <summary>--minutes: times a few fine-tuning steps through the same pipeline on an evenly spread sample of the
    /// training images (every class in it), then plans the epochs that fit (MaeTimeBudget).</summary>
    static MaeTimePlan PlanFineTune(List<ImageFolder.Row> rows, int validationImages, MaeFineTuneOptions training, double minutes,
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

    sealed class EpochLines(TextWriter output) : IProgress<MaeFineTuneProgress>
    {
        public void Report(MaeFineTuneProgress p)
        {
            if (!p.EndOfEpoch) return;
            output.WriteLine($"epoch {p.Epoch + 1}/{p.Epochs}  loss {p.EpochLoss:F4}" +
                             (p.ValidationAccuracy is double a ? $"  val acc {a:P1}" : "") + $"  {p.ImagesPerSecond:F0} img/s  eta {p.Eta:hh\\:mm\\:ss}");
        }
    }
}
