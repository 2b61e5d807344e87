using System.CommandLine;
using System.Globalization;
using Mae.MLNet;
using Mae.MLNet.Input;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace Mae.Cli.Commands;

/// <summary>
/// <c>mae predict --model model.zip --images DIR --out predictions.csv</c>: scores every image of a folder with a model
/// zip written by <c>mae finetune</c>, exactly as a deployed ML.NET application does (<c>Model.Load</c> after the zip's
/// integrity check, a <c>Path</c> column in, <c>PredictedLabel</c> and <c>Score</c> out). When every image sits in a
/// class sub-folder, the sub-folder is taken as its true class and the accuracy is printed.
/// </summary>
public static class PredictCommand
{
    public static Command Create(CliContext context)
    {
        var model = new Option<FileInfo>("--model") { Description = "The model zip written by 'mae finetune'.", Required = true };
        var images = CommonOptions.Images("A folder of images (class sub-folders, if any, are taken as the true classes and give an accuracy).");
        var output = new Option<FileInfo>("--out") { Description = "The CSV to write: path, predicted class, its probability.", Required = true };
        var skipBad = CommonOptions.SkipBadFiles();
        var progressSeconds = CommonOptions.ProgressSeconds();
        var command = new Command("predict", "Score a folder of images with a model zip from 'mae finetune' (through ML.NET, as a deployed app does); write their classes to a CSV.")
        {
            model, images, output, skipBad, progressSeconds,
        };
        command.SetAction(r =>
        {
            string folder = r.GetValue(images)!.FullName;
            var rows = ImageFolder.List(folder, requireClasses: false);
            string zip = CliFiles.InputFile(r.GetValue(model)!, "--model");
            string target = CliFiles.OutputFile(r.GetValue(output)!, "--out", rows.Select(x => x.Path).Append(zip).ToList(), ".csv");
            var ml = new MLContext(seed: 0);
            var transformer = ml.Model.LoadVerified(zip, out var inputSchema);
            if (inputSchema.GetColumnOrNull(ImageFolder.PathColumn) is not { Type: TextDataViewType })
                throw new CliException($"--model: '{zip}' does not read a text '{ImageFolder.PathColumn}' column of image files; expected a zip written by 'mae finetune'.");
            var outputSchema = transformer.GetOutputSchema(inputSchema);
            if (outputSchema.GetColumnOrNull("PredictedLabel") is not { Type: TextDataViewType } || outputSchema.GetColumnOrNull("Score") is not { Type: VectorDataViewType })
                throw new CliException($"--model: '{zip}' gives no text 'PredictedLabel' and 'Score' vector; expected a zip written by 'mae finetune'.");
            var classes = ClassNames(outputSchema["Score"]);
            using var engine = ml.Model.CreatePredictionEngine<FinetuneCommand.PathRow, Prediction>(transformer, inputSchema);

            bool skip = r.GetValue(skipBad);
            bool labelled = rows.All(x => x.Label.Length > 0);
            var progress = new CliProgress(context.Output, r.GetValue(progressSeconds), CliProgress.Terminal(lead: true));
            progress.Begin(0);
            progress.Line($"predict: {rows.Count} images in '{folder}' with '{zip}' ({classes.Count} classes)" +
                          (labelled ? "; their sub-folders are their true classes" : ""));
            // The library's reader goes over every file first, as the training commands read them (regular files only,
            // byte, pixel and time bounds, a truncated file refused): ML.NET would decode a truncated JPEG with grey rows
            // and allocate a hostile header's full bitmap. A bad file ends the command naming it, or is skipped.
            var bad = CheckedByTheLibrary(rows.Select(x => x.Path).ToList(), skip, context.Cancellation);
            int scored = 0, correct = 0;
            var skipped = bad.Select(b => (Path: b.FileName, b.Reason)).ToList();
            var badPaths = bad.Select(b => b.FileName).ToHashSet(StringComparer.Ordinal);
            var passed = rows.Where(x => !badPaths.Contains(x.Path)).ToList();
            CliFiles.WriteAtomically(target, temporary =>
            {
                using var writer = new StreamWriter(temporary);
                writer.WriteLine("path,predicted,probability" + (labelled ? ",true" : ""));
                for (int i = 0; i < passed.Count; i++)
                {
                    context.Cancellation.ThrowIfCancellationRequested();
                    var row = passed[i];
                    Prediction p;
                    try { p = engine.Predict(new FinetuneCommand.PathRow { Path = row.Path }); }
                    catch (Exception e) when (e is not OperationCanceledException)
                    {
                        // A file that changed after the check, or one ML.NET's decoder refuses where the library's did not.
                        string reason = CliFlags.OneLine(e);
                        if (!skip) throw new MaeImageFileException(row.Path, $"could not be scored: {reason} (--skip-bad-files passes over such files)", e);
                        skipped.Add((row.Path, reason));
                        continue;
                    }
                    scored++;
                    if (labelled && p.PredictedLabel == row.Label) correct++;
                    float probability = p.Score.Length == 0 ? float.NaN : p.Score.Max();
                    writer.WriteLine(string.Join(',', Csv(Path.GetRelativePath(folder, row.Path)), Csv(p.PredictedLabel),
                        probability.ToString("G6", CultureInfo.InvariantCulture)) + (labelled ? "," + Csv(row.Label) : ""));
                    progress.Report(i + 1, passed.Count, $"{i + 1}/{passed.Count} images", "");
                }
            });
            foreach (var (path, reason) in skipped) progress.Line($"skipped {path}: {reason}");
            if (labelled && scored > 0)
            {
                var unknown = rows.Select(x => x.Label).Distinct().Where(l => !classes.Contains(l)).ToList();
                progress.Line($"accuracy {(double)correct / scored:P1} ({correct} of {scored} images)" +
                              (unknown.Count > 0 && classes.Count > 0 ? $"; folders the model has no class for (always wrong): {string.Join(", ", unknown)}" : ""));
            }
            progress.Line($"wrote {target}: {scored} images");
            return 0;
        });
        return command;
    }

    /// <summary>Reads every file through the library's own source (an evaluation pass at a tiny output size: the decode
    /// checks, not the pixels, are wanted) and returns the files it skipped; without <paramref name="skip"/> the first
    /// bad file throws a <see cref="MaeImageFileException"/> naming it.</summary>
    static IReadOnlyList<MaeImageFileSource.SkippedFile> CheckedByTheLibrary(IReadOnlyList<string> paths, bool skip, CancellationToken cancellation)
    {
        var source = MaeImageFileSource.FromPaths(paths, new MaeImageInputOptions
        {
            Augmentation = new MaeAugmentationOptions { OutputSize = 8, Channels = 3 },
            SkipBadFiles = skip,
        });
        foreach (var batch in source.Batches(new MaeEpochPlan { BatchSize = 256, Training = false }))
        {
            batch.Dispose();
            cancellation.ThrowIfCancellationRequested();
        }
        return source.SkippedFiles;
    }

    /// <summary>The class names in the order of the <c>Score</c> vector (its slot names), or none.</summary>
    static IReadOnlyList<string> ClassNames(DataViewSchema.Column score)
    {
        if (!score.HasSlotNames()) return [];
        VBuffer<ReadOnlyMemory<char>> names = default;
        score.GetSlotNames(ref names);
        return names.DenseValues().Select(n => n.ToString()).ToList();
    }

    static string Csv(string value) => value.IndexOfAny([',', '"', '\n', '\r']) < 0 ? value : "\"" + value.Replace("\"", "\"\"") + "\"";

    public sealed class Prediction
    {
        public string PredictedLabel { get; set; } = "";
        public float[] Score { get; set; } = [];
    }
}
