using System.CommandLine;
using Mae.MLNet;
using Mae.MLNet.FineTuning;
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
        var epochs = new Option<int>("--epochs") { Description = "Epochs.", DefaultValueFactory = _ => 50 };
        var warmup = new Option<double>("--warmup-epochs", "--warmup_epochs") { Description = "Linear warm-up epochs.", DefaultValueFactory = _ => 5 };
        var batch = new Option<int>("--batch-size", "--batch_size") { Description = "Images per step.", DefaultValueFactory = _ => 64 };
        var accum = new Option<int>("--accum-iter", "--accum_iter") { Description = "Steps per optimizer update.", DefaultValueFactory = _ => 1 };
        var blr = new Option<double>("--blr") { Description = "Base learning rate: lr = blr × effective batch / 256.", DefaultValueFactory = _ => 1e-3 };
        var layerDecay = new Option<double>("--layer-decay", "--layer_decay") { Description = "Layer-wise lr decay.", DefaultValueFactory = _ => 0.75 };
        var dropPath = new Option<double>("--drop-path", "--drop_path") { Description = "Stochastic depth rate.", DefaultValueFactory = _ => 0.1 };
        var smoothing = new Option<double>("--smoothing") { Description = "Label smoothing.", DefaultValueFactory = _ => 0.1 };
        var mixup = new Option<double>("--mixup") { Description = "Mixup alpha (0 = off).", DefaultValueFactory = _ => 0 };
        var cutmix = new Option<double>("--cutmix") { Description = "CutMix alpha (0 = off).", DefaultValueFactory = _ => 0 };
        var size = CommonOptions.ImageSize();
        var heads = CommonOptions.Heads();
        var device = CommonOptions.Device();
        var seed = CommonOptions.Seed();
        var checkpoints = new Option<DirectoryInfo?>("--checkpoint-dir") { Description = "Folder for checkpoints (resume with --resume)." };
        var resume = new Option<bool>("--resume") { Description = "Continue from the latest checkpoint in --checkpoint-dir." };
        var command = new Command("finetune", "Fine-tune an MAE encoder + linear head on labelled images; write an ML.NET model zip.")
        {
            images, validation, weights, output, epochs, warmup, batch, accum, blr, layerDecay, dropPath, smoothing, mixup, cutmix,
            size, heads, device, seed, checkpoints, resume,
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
            var headCounts = CommonOptions.ParseHeads(r.GetValue(heads));
            using (var file = Mae.MLNet.Interop.MaeWeightFile.Read(path, heads: headCounts))
                (imageSize, channels) = (r.GetValue(size) ?? file.Config.ImageSize, file.Config.InChannels);
            var train = ml.Data.LoadFromEnumerable(rows);
            var val = r.GetValue(validation) is { } v ? ml.Data.LoadFromEnumerable(ImageFolder.List(v.FullName, requireClasses: true)) : null;

            // The paths are absolute, so the zip's LoadImages needs no folder of its own.
            var prep = ImageFolder.Pixels(ml, "", imageSize, channels);
            var keys = ml.Transforms.Conversion.MapValueToKey(ImageFolder.LabelColumn);
            // Data parallel as `mae pretrain`: under mpirun / srun every rank fine-tunes on its shard of each epoch (the
            // global --batch-size split over the ranks, gradients averaged); rank 0 writes the zip. One process takes the
            // same path with world size 1.
            var where = CommonOptions.ParseDevice(r.GetValue(device)!);
            var collective = Mae.MLNet.Training.MaeCollective.ForDevice(where);
            var trainer = ml.MulticlassClassification.Trainers.MaeFineTune(new MaeFineTuneTrainer.Options
            {
                InputColumnName = ImageFolder.PixelsColumn, LabelColumnName = ImageFolder.LabelColumn, WeightsPath = path, ImageSize = imageSize, Heads = headCounts,
                ValidationData = val is null ? null : keys.Append(prep).Fit(train).Transform(val),
                Training = new MaeFineTuneOptions
                {
                    Epochs = r.GetValue(epochs), WarmupEpochs = r.GetValue(warmup), BatchSize = r.GetValue(batch), AccumIter = r.GetValue(accum),
                    BaseLearningRate = r.GetValue(blr), LayerDecay = r.GetValue(layerDecay), DropPath = r.GetValue(dropPath),
                    LabelSmoothing = r.GetValue(smoothing), Mixup = r.GetValue(mixup), Cutmix = r.GetValue(cutmix),
                    Device = where, Seed = r.GetValue(seed), Collective = collective,
                    CheckpointDir = r.GetValue(checkpoints)?.FullName, Resume = r.GetValue(resume),
                },
                Progress = new EpochLines(context.Output),
            });
            var pipeline = keys.Append(prep).Append(trainer).Append(ml.Transforms.Conversion.MapKeyToValue("PredictedLabel"));
            var model = pipeline.Fit(train);
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
