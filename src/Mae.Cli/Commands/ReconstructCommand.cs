using System.CommandLine;
using Mae.MLNet.Interop;
using Mae.MLNet.Model;
using Mae.MLNet.Pretraining;
using Mae.MLNet.Runtime;
using Mae.MLNet.Visualization;
using Mae.MLNet.Input;
using static TorchSharp.torch;

namespace Mae.Cli.Commands;

/// <summary><c>mae reconstruct --weights W --images DIR --out grid.png</c>: the paper's Fig. 2 picture (masked,
/// reconstruction, reconstruction pasted into the visible patches, original) for the first images of a folder.</summary>
public static class ReconstructCommand
{
    public static Command Create(CliContext context)
    {
        var weights = CommonOptions.Weights(required: true);
        var images = CommonOptions.Images("A folder of images (and/or class sub-folders); --count of them, spread evenly over the sorted list, are drawn.");
        var output = new Option<FileInfo>("--out") { Description = "The PNG to write (not one of the input images).", Required = true };
        var count = new Option<int>("--count") { Description = "How many images (rows of the grid), at most 256.", DefaultValueFactory = _ => 8 };
        var maskRatio = new Option<double>("--mask-ratio") { Description = "Fraction of patches removed (default 0.75; 0.6, the official FCMAE ratio, for an FCMAE checkpoint).", DefaultValueFactory = _ => 0.75 };
        var size = CommonOptions.ImageSize();
        var heads = CommonOptions.Heads();
        var seed = CommonOptions.Seed();
        var skipBad = CommonOptions.SkipBadFiles();
        var command = new Command("reconstruct", "Draw masked images and their reconstructions (needs weights with the decoder: mae.safetensors or a .maeckpt, an FCMAE one included).")
        {
            weights, images, output, count, maskRatio, size, heads, seed, skipBad,
        };
        command.SetAction(r =>
        {
            string folder = r.GetValue(images)!.FullName;
            var files = MaeImageFolder.ListImages(folder);
            string target = CliFiles.OutputFile(r.GetValue(output)!, "--out", files, ".png");
            int n = r.GetValue(count);
            if (n is < 1 or > 256) throw new CliException($"--count must be between 1 and 256; got {n}.");
            double ratio = r.GetValue(maskRatio);
            if (!(ratio >= 0 && ratio < 1)) throw new CliException($"--mask-ratio must be in [0, 1); got {ratio}.");
            // A pre-training checkpoint is read once, whichever model it holds. An FCMAE (ConvNeXt V2 pre-training) draws its
            // own masks of 32-px cells, at the official 0.6 unless given.
            string source = CliFiles.InputFile(r.GetValue(weights)!, "--weights");
            var held = source.EndsWith(MaePretrainCheckpoint.FileExtension, StringComparison.OrdinalIgnoreCase) ? MaePretrainCheckpoint.Load(source) : null;
            using var fcmae = held as Fcmae;
            if (fcmae is not null && r.GetResult(maskRatio) is null or { Implicit: true }) ratio = 0.6;
            CliWeights? weightsFile;
            using (var heldMae = held as MaskedAutoencoder)   // a ViT checkpoint's model goes once it is a weights file
                weightsFile = fcmae is not null ? null : heldMae is not null ? CliWeights.Of(heldMae) : CliWeights.Resolve(r.GetValue(weights)!);
            using var path = weightsFile;
            using var vit = path is null ? null
                : MaeWeightFile.LoadMaskedAutoencoder(path.Path, imageSize: CommonOptions.CheckInputSize(r.GetValue(size)), heads: CommonOptions.ParseHeads(r.GetValue(heads)));
            if (fcmae is not null && r.GetValue(size) is int given && given != fcmae.Config.ImageSize)
                throw new CliException($"--input-size: the FCMAE checkpoint '{source}' was trained at {fcmae.Config.ImageSize} px and draws at that size; got {given}.");
            var geometry = fcmae is not null ? PretrainCommand.Geometry(fcmae.Config) : vit!.Config;
            using var scope = NewDisposeScope();
            var (x, norm, skipped) = SpreadImages(files, n, geometry, r.GetValue(skipBad));
            TorchRuntime.Seed(r.GetValue(seed));
            var noise = rand(x.shape[0], geometry.NumPatches);
            CliFiles.WriteAtomically(target, temporary =>
            {
                using var result = fcmae is not null ? MaeReconstruction.Compute(fcmae, x, ratio, noise) : MaeReconstruction.Compute(vit!, x, ratio, noise);
                ReconstructionGrid.SavePng(temporary, result, norm);
            });
            foreach (var s in skipped) context.Output.WriteLine($"skipped {s.FileName}: {s.Reason}");
            context.Output.WriteLine($"wrote {target}: {x.shape[0]} image(s), mask ratio {ratio}");
            return 0;
        });
        return command;
    }

    /// <summary><paramref name="count"/> images spread evenly over <paramref name="files"/> (file i·n/count: a
    /// class-per-folder set shows several classes, not the first class's first files) through the reference's evaluation
    /// transform (shorter side to size/0.875, centre crop, normalise): [n, C, H, W] on the CPU, in the caller's scope.
    /// With <paramref name="skip"/> a bad file is replaced by the next readable one (and listed), else it stops the command.</summary>
    internal static (Tensor Images, PixelNormalization Norm, IReadOnlyList<MaeImageFileSource.SkippedFile> Skipped) SpreadImages(
        IReadOnlyList<string> files, int count, MaeConfig config, bool skip)
    {
        var picked = Spread(files.Count, count).Select(i => files[i]).ToList();
        int n = picked.Count;
        var norm = PixelNormalization.Default(config.InChannels);
        var source = MaeImageFileSource.FromPaths(picked, new MaeImageInputOptions
        {
            Augmentation = new MaeAugmentationOptions { OutputSize = config.ImageSize, Channels = config.InChannels, Normalization = norm },
            SkipBadFiles = skip,
        });
        var images = source.Batches(new MaeEpochPlan { BatchSize = n, Training = false }).Single();
        return (images, norm, source.SkippedFiles);
    }

    /// <summary>min(count, total) indices spread evenly over [0, total): i · total / n.</summary>
    internal static int[] Spread(int total, int count)
    {
        int n = Math.Min(count, total);
        return Enumerable.Range(0, n).Select(i => (int)((long)i * total / n)).ToArray();
    }

}
