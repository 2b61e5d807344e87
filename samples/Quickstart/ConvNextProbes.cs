using System.Diagnostics;
using Mae.MLNet.Interop;
using Mae.MLNet.Model;
using Microsoft.ML;
using Spectre.Console;

namespace Mae.MLNet.Quickstart;

public static partial class QuickstartRun
{
    /// <summary>
    /// <c>--weights</c> with a ConvNeXt V2 file (timm's <c>convnextv2_*.fcmae</c>, or <c>convnextv2.safetensors</c> from
    /// <c>mae pretrain --model convnextv2-*</c>): the same data and linear / 20-NN probes on its globally pooled features —
    /// the last stage through <c>head.norm</c> (the featurizer's default), then all four stages — beside raw pixels. The
    /// cls-token row, the attentive probe and the reconstruction picture are the ViT MAE's and are absent. The file does
    /// not say the image size it was trained at: <c>--image-size</c> gives it (64 for CIFAR-10 upsampled: at 32 px a
    /// ConvNeXt's total stride of 32 leaves FCMAE a 1 × 1 map to mask).
    /// </summary>
    static int ConvNextProbes(QuickstartSettings s, MLContext ml, Stopwatch total)
    {
        int size = s.ImageSize ?? throw new ArgumentException(
            "--image-size is needed with ConvNeXt V2 weights: the file does not say the image size it was trained at (e.g. 64 after `mae pretrain --model convnextv2-atto --input-size 64`).");
        ConvNextV2Config config;
        using (var inferred = MaeWeightFile.LoadConvNextV2(s.WeightsPath!)) config = (inferred.Config with { ImageSize = size }).Validate();
        using var model = MaeWeightFile.LoadConvNextV2(s.WeightsPath!, config);
        AnsiConsole.MarkupLine($"weights [bold]{Markup.Escape(s.WeightsPath!)}[/]: {Markup.Escape(config.ToString())}, at {size} px");
        var clock = Stopwatch.StartNew();
        var data = LoadData(ml, s, config.InChannels, size);
        AnsiConsole.MarkupLine($"data: {Markup.Escape(data.Description)} ({clock.Elapsed.TotalSeconds:F1} s)");

        var rows = new List<ProbeRow>();
        clock.Restart();
        Add(rows, Probe(s.Seed, data.RawTrain, data.RawTest, Datasets.PixelsColumn, "raw pixels", ((Microsoft.ML.Data.VectorDataViewType)data.RawTrain.Schema[Datasets.PixelsColumn].Type).Size));
        foreach (int stages in new[] { 1, 4 })
        {
            var f = ml.Transforms.MaeFeaturize(new MaeFeaturizerOptions
            {
                OutputColumnName = "Features", InputColumnName = Datasets.PixelsColumn, Layers = stages, Device = s.Device,
            }, model).Fit(data.Train);
            Add(rows, Probe(s.Seed, f.Transform(data.Train), f.Transform(data.Test), "Features",
                $"ConvNeXt V2 encoder (weights file), global average of {(stages == 1 ? "the last stage" : $"all {stages} stages")}", model.FeatureWidth(stages)));
        }
        double probeSeconds = clock.Elapsed.TotalSeconds;
        PrintTable(rows, data.TestCount);
        var written = WriteReport(s.OutputDirectory, rows, new
        {
            data = data.Description, model = config.ToString(), image_size = size, probes = Summary(rows),
            probe_seconds = Math.Round(probeSeconds, 1), total_seconds = Math.Round(total.Elapsed.TotalSeconds, 1),
        });
        foreach (var f in written) AnsiConsole.MarkupLine($"wrote [link]{Markup.Escape(f)}[/]");
        AnsiConsole.MarkupLine($"done in {total.Elapsed.TotalSeconds:F0} s");
        return 0;
    }
}
