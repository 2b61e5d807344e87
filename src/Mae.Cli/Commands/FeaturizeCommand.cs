using System.CommandLine;
using System.Globalization;
using Mae.MLNet;
using Mae.MLNet.Input;
using Mae.MLNet.Interop;
using Mae.MLNet.Model;
using Mae.MLNet.Runtime;
using Mae.MLNet.Training;
using Microsoft.ML;
using Microsoft.ML.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace Mae.Cli.Commands;

/// <summary><c>mae featurize --images DIR --weights W --out features.csv|.tsv|.idv</c>: one row per image (path,
/// class sub-folder, feature vector). The files are read by the library's <see cref="MaeImageFileSource"/> with the
/// reference's evaluation transform (shorter side to size/0.875, centre crop, normalise) — what <c>MaeFeaturize</c>
/// does to a path column — and put through the encoder batch by batch (<see cref="MaeEncoder.ExtractFeatures"/>).</summary>
public static class FeaturizeCommand
{
    public static Command Create(CliContext context)
    {
        var images = CommonOptions.Images("A folder of images (and/or class sub-folders, whose names become the Label column).");
        var weights = CommonOptions.Weights(required: true);
        var output = new Option<FileInfo>("--out")
        {
            Description = "Where to write: .csv / .tsv (text, a header line) or .idv (ML.NET's binary IDataView, ml.Data.LoadFromBinary).", Required = true,
        };
        var pooling = CommonOptions.Pooling();
        var layers = CommonOptions.Layers();
        var batch = new Option<int>("--batch-size") { Description = "Images per forward pass (1 to 4096).", DefaultValueFactory = _ => 64 };
        var size = CommonOptions.ImageSize();
        var heads = CommonOptions.Heads();
        var device = CommonOptions.Device();
        var skipBad = CommonOptions.SkipBadFiles();
        var progressSeconds = CommonOptions.ProgressSeconds();
        var command = new Command("featurize", "Write the encoder's features (ViT MAE, or ConvNeXt V2: pooled stages) of every image in a folder (with --skip-bad-files, unreadable images get no row).")
        {
            images, weights, output, pooling, layers, batch, size, heads, device, skipBad, progressSeconds,
        };
        command.SetAction(r =>
        {
            string folder = r.GetValue(images)!.FullName;
            var rows = ImageFolder.List(folder, requireClasses: false);
            string target = CliFiles.OutputFile(r.GetValue(output)!, "--out", rows.Select(x => x.Path).ToList(), ".csv", ".tsv", ".idv");
            int batchSize = r.GetValue(batch);
            if (batchSize is < 1 or > 4096) throw new CliException($"--batch-size must be between 1 and 4096; got {batchSize}.");
            using var weightsFile = CliWeights.Resolve(r.GetValue(weights)!);
            // A ConvNeXt V2 file (told by its names): pooled features of its last --layers stages (default 1); else the ViT encoder.
            using var convNext = MaeWeightFile.HoldsConvNextV2(weightsFile.Path) ? ExportCommand.LoadConvNext(weightsFile.Path, r.GetValue(size)) : null;
            using var encoder = convNext is not null ? null
                : MaeWeightFile.LoadEncoder(weightsFile.Path, imageSize: CommonOptions.CheckInputSize(r.GetValue(size)), heads: CommonOptions.ParseHeads(r.GetValue(heads)));
            var cfg = encoder?.Config ?? PretrainCommand.Geometry(convNext!.Config);
            int depth = convNext is null ? CommonOptions.ResolveLayers(r.GetValue(layers), cfg)
                : r.GetValue(layers) is int n and (< 1 or > 4) ? throw new CliException($"--layers must be between 1 and 4 (a ConvNeXt V2's stages); got {n}.")
                : r.GetValue(layers) ?? 1;
            CommonOptions.CheckBatchMemory(batchSize, cfg);
            var pool = CommonOptions.ParsePooling(r.GetValue(pooling)!);
            var torchDevice = CommonOptions.ParseDevice(r.GetValue(device)!).Resolve();
            nn.Module network = (nn.Module?)encoder ?? convNext!;
            network.to(torchDevice);
            network.eval();
            bool skip = r.GetValue(skipBad);
            var source = MaeImageFileSource.FromPaths(rows.Select(x => x.Path), new MaeImageInputOptions
            {
                Augmentation = new MaeAugmentationOptions { OutputSize = cfg.ImageSize, Channels = cfg.InChannels, Normalization = PixelNormalization.Default(cfg.InChannels) },
                SkipBadFiles = skip,
            });
            var progress = new CliProgress(context.Output, r.GetValue(progressSeconds), CliProgress.Terminal(lead: true));
            progress.Begin(0);
            int width = convNext?.FeatureWidth(depth) ?? MaeEncoder.FeatureWidth(cfg, pool, depth), written = 0;
            progress.Line($"featurize: {rows.Count} images in '{folder}'{(skip ? " (bad files skipped)" : "")}; " +
                          (convNext is not null ? $"{convNext.Config}; pooled features of the last {depth} stage(s)"
                                                : $"encoder {cfg.EmbedDim}×{cfg.Depth} blocks at {cfg.ImageSize} px; {r.GetValue(pooling)} pooling of the last {depth} block(s)") +
                          $" = {width} features per image");

            // The rows in file order, each with its features; a file the source skipped (replaced by the next readable
            // one inside its batch) gets no row.
            IEnumerable<FeatureRow> Features()
            {
                int done = 0;
                foreach (var pixels in source.Batches(new MaeEpochPlan { BatchSize = batchSize, Training = false }))
                {
                    context.Cancellation.ThrowIfCancellationRequested();
                    float[] values;
                    using (var scope = NewDisposeScope())
                    using (no_grad())
                    {
                        using var x = pixels.to(torchDevice);
                        var features = convNext is not null ? convNext.ForwardFeatures(x, depth) : encoder!.ExtractFeatures(x, pool, depth);
                        values = features.cpu().data<float>().ToArray();
                    }
                    pixels.Dispose();
                    var bad = source.SkippedFiles.Select(f => f.FileName).ToHashSet(StringComparer.Ordinal);
                    int n = values.Length / width;
                    for (int i = 0; i < n; i++, done++)
                    {
                        if (bad.Contains(rows[done].Path)) continue;
                        written++;
                        yield return new FeatureRow { Path = rows[done].Path, Label = rows[done].Label, Features = values.AsSpan(i * width, width).ToArray() };
                    }
                    progress.Report(done, rows.Count, $"{done}/{rows.Count} images", "");
                }
            }

            // Written next to the target and renamed when complete: a failure leaves no half-written file.
            CliFiles.WriteAtomically(target, temporary =>
            {
                using var stream = File.Create(temporary);
                if (target.EndsWith(".idv", StringComparison.OrdinalIgnoreCase)) SaveBinary(Features(), width, stream, temporary + ".rows");
                else WriteText(Features(), stream, target.EndsWith(".tsv", StringComparison.OrdinalIgnoreCase) ? '\t' : ',', folder);
            });
            foreach (var s in source.SkippedFiles) progress.Line($"skipped {s.FileName}: {s.Reason}");
            progress.Line($"wrote {target}: {written} images × {width} features");
            return 0;
        });
        return command;
    }

    public sealed class FeatureRow
    {
        public string Path { get; set; } = "";
        public string Label { get; set; } = "";
        public float[] Features { get; set; } = [];
    }

    /// <summary>ML.NET's binary IDataView (Path, Label, Features as a vector of known size). ML.NET's saver reads its
    /// input more than once, so the rows (computed once) go through a scratch file beside the target first: memory stays
    /// one row, not the whole table.</summary>
    static void SaveBinary(IEnumerable<FeatureRow> rows, int width, Stream stream, string scratch)
    {
        try
        {
            using (var writer = new BinaryWriter(File.Create(scratch)))
                foreach (var row in rows)
                {
                    writer.Write(row.Path);
                    writer.Write(row.Label);
                    foreach (float x in row.Features) writer.Write(x);
                }
            IEnumerable<FeatureRow> Reread()
            {
                using var reader = new BinaryReader(File.OpenRead(scratch));
                while (reader.BaseStream.Position < reader.BaseStream.Length)
                {
                    var row = new FeatureRow { Path = reader.ReadString(), Label = reader.ReadString(), Features = new float[width] };
                    for (int i = 0; i < width; i++) row.Features[i] = reader.ReadSingle();
                    yield return row;
                }
            }
            var ml = new MLContext(0);
            var schema = SchemaDefinition.Create(typeof(FeatureRow));
            schema[nameof(FeatureRow.Features)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, width);
            ml.Data.SaveAsBinary(ml.Data.LoadFromEnumerable(Reread(), schema), stream);
        }
        finally { if (File.Exists(scratch)) File.Delete(scratch); }
    }

    /// <summary>A header (<c>Path, Label, f0 … f{D−1}</c>) and one line per image (its path relative to
    /// <paramref name="folder"/>), numbers round-trippable.</summary>
    static void WriteText(IEnumerable<FeatureRow> rows, Stream stream, char separator, string folder)
    {
        using var writer = new StreamWriter(stream, leaveOpen: true);
        bool header = true;
        foreach (var row in rows)
        {
            if (header)
            {
                writer.WriteLine(string.Join(separator, new[] { "Path", "Label" }.Concat(row.Features.Select((_, i) => $"f{i}"))));
                header = false;
            }
            writer.WriteLine(string.Join(separator, new[] { Quote(Path.GetRelativePath(folder, row.Path), separator), Quote(row.Label, separator) }
                .Concat(row.Features.Select(x => x.ToString("R", CultureInfo.InvariantCulture)))));
        }
    }

    static string Quote(string text, char separator)
        => text.Contains(separator) || text.Contains('"') || text.Contains('\n') ? $"\"{text.Replace("\"", "\"\"")}\"" : text;
}
