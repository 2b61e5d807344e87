using System.CommandLine;
using System.Globalization;
using Mae.MLNet;
using Mae.MLNet.Interop;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace Mae.Cli.Commands;

/// <summary><c>mae featurize --images DIR --weights W --out features.csv|.tsv|.idv</c>: one row per image (path,
/// class sub-folder, feature vector) through ML.NET's <c>MaeFeaturize</c>.</summary>
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
        var batch = new Option<int>("--batch-size") { Description = "Images per forward pass.", DefaultValueFactory = _ => 64 };
        var size = CommonOptions.ImageSize();
        var heads = CommonOptions.Heads();
        var device = CommonOptions.Device();
        var command = new Command("featurize", "Write the encoder's features of every image in a folder.")
        {
            images, weights, output, pooling, layers, batch, size, heads, device,
        };
        command.SetAction(r =>
        {
            string path = CommonOptions.InputFile(r.GetValue(weights)!, "--weights");
            string target = CommonOptions.OutputFile(r.GetValue(output)!, "--out", ".csv", ".tsv", ".idv");
            string folder = r.GetValue(images)!.FullName;
            var rows = ImageFolder.List(folder, requireClasses: false);
            using var encoder = MaeWeightFile.LoadEncoder(path, imageSize: r.GetValue(size), heads: CommonOptions.ParseHeads(r.GetValue(heads)));
            var cfg = encoder.Config;
            var ml = new MLContext(0);
            // Absolute paths into MaeFeaturize's path-column door: each file decoded and put through the reference's
            // evaluation transform (shorter side to size/0.875, centre crop, normalise).
            var data = ml.Data.LoadFromEnumerable(rows);
            var pipeline = ml.Transforms.MaeFeaturize(new MaeFeaturizerOptions
                {
                    InputColumnName = ImageFolder.PathColumn, OutputColumnName = "Features",
                    Pooling = CommonOptions.ParsePooling(r.GetValue(pooling)!), Layers = r.GetValue(layers),
                    BatchSize = r.GetValue(batch), Device = CommonOptions.ParseDevice(r.GetValue(device)!),
                }, encoder)
                .Append(ml.Transforms.SelectColumns(ImageFolder.PathColumn, ImageFolder.LabelColumn, "Features"));
            var features = pipeline.Fit(data).Transform(data);
            // Written next to the target and renamed when complete: a failure leaves no half-written file.
            string temporary = Path.Combine(Path.GetDirectoryName(target)!, $".{Path.GetFileName(target)}.tmp-{Guid.NewGuid():N}");
            try
            {
                using (var stream = File.Create(temporary))
                {
                    if (target.EndsWith(".idv", StringComparison.OrdinalIgnoreCase)) ml.Data.SaveAsBinary(features, stream);
                    else WriteText(features, stream, target.EndsWith(".tsv", StringComparison.OrdinalIgnoreCase) ? '\t' : ',', folder);
                }
                File.Move(temporary, target, overwrite: true);
            }
            finally { if (File.Exists(temporary)) File.Delete(temporary); }
            context.Output.WriteLine($"wrote {target}: {rows.Count} images × {cfg.EmbedDim * r.GetValue(layers)} features");
            return 0;
        });
        return command;
    }

    /// <summary>A header (<c>Path, Label, f0 … f{D−1}</c>) and one line per image (its path relative to
    /// <paramref name="folder"/>), numbers round-trippable.</summary>
    static void WriteText(IDataView features, Stream stream, char separator, string folder)
    {
        using var writer = new StreamWriter(stream, leaveOpen: true);
        using var cursor = features.GetRowCursor(features.Schema);
        var path = cursor.GetGetter<ReadOnlyMemory<char>>(features.Schema[ImageFolder.PathColumn]);
        var label = cursor.GetGetter<ReadOnlyMemory<char>>(features.Schema[ImageFolder.LabelColumn]);
        var vector = cursor.GetGetter<VBuffer<float>>(features.Schema["Features"]);
        ReadOnlyMemory<char> p = default, l = default;
        VBuffer<float> v = default;
        bool header = true;
        while (cursor.MoveNext())
        {
            path(ref p); label(ref l); vector(ref v);
            var values = v.DenseValues().ToArray();
            if (header)
            {
                writer.WriteLine(string.Join(separator, new[] { "Path", "Label" }.Concat(values.Select((_, i) => $"f{i}"))));
                header = false;
            }
            writer.WriteLine(string.Join(separator, new[] { Quote(Path.GetRelativePath(folder, p.ToString()), separator), Quote(l.ToString(), separator) }
                .Concat(values.Select(x => x.ToString("R", CultureInfo.InvariantCulture)))));
        }
    }

    static string Quote(string text, char separator)
        => text.Contains(separator) || text.Contains('"') || text.Contains('\n') ? $"\"{text.Replace("\"", "\"\"")}\"" : text;
}
