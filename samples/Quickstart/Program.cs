using System.CommandLine;
using Mae.MLNet.Quickstart;
using Mae.MLNet.Runtime;

// Mae.MLNet quickstart: pre-train a small masked autoencoder on real images (no labels), then linear-probe its
// features with ML.NET's L-BFGS maximum entropy next to the same probe on raw pixels, and draw reconstructions and the
// loss curve.
// Default data: the CIFAR-10 photos shipped in samples/data/cifar10-subset (no download); --sample fashion-mnist
// takes the Fashion-MNIST subset shipped beside it.

var data = new Option<DirectoryInfo?>("--data")
{
    Description = "Folder with the four Fashion-MNIST IDX files (e.g. the full set from Debian's dataset-fashion-mnist, " +
                  "/usr/share/datasets/fashion-mnist) instead of the embedded sample.",
};
var images = new Option<DirectoryInfo?>("--images")
{
    Description = "Your own images instead: a folder with one subfolder per class (png/jpg/bmp/gif/webp), or with train/ and test/ " +
                  "folders of class folders (torchvision's ImageFolder split); without them 20 % are held out for the probe.",
};
var sample = new Option<string>("--sample")
{
    Description = "The embedded data: cifar10 (3 000 + 1 000 CIFAR-10 photos, 32×32 RGB) or fashion-mnist (4 000 + 1 000 images, 28×28 grey).",
    DefaultValueFactory = _ => "cifar10",
};
sample.AcceptOnlyFromAmong("cifar10", "fashion-mnist");
var model = new Option<string?>("--model") { Description = $"A preset instead of the quickstart's model: {string.Join(", ", Mae.MLNet.Model.MaeConfig.PresetNames)}." };
var precision = new Option<string>("--precision") { Description = "auto (bf16 where the CPU or GPU has it), fp32 or bf16.", DefaultValueFactory = _ => "auto" };
precision.AcceptOnlyFromAmong("auto", "fp32", "bf16");
var lr = new Option<double?>("--lr") { Description = $"Peak pre-training learning rate (default {QuickstartRun.PeakLearningRate}, batch 256)." };
var weights = new Option<FileInfo?>("--weights")
{
    Description = "Public MAE weights (official .pth, timm/our .safetensors, or a Hugging Face folder) or ConvNeXt V2 weights (timm's fcmae, mae pretrain's convnextv2.safetensors; with --image-size): skip pre-training and featurize with them.",
};
var device = new Option<string>("--device") { Description = "Where to run: auto (CUDA when available), cpu or cuda.", DefaultValueFactory = _ => "auto" };
device.AcceptOnlyFromAmong("auto", "cpu", "cuda");
var epochs = new Option<int?>("--epochs")
{
    Description = $"Pre-training epochs (default: a fixed budget, {QuickstartRun.DefaultEpochs(photos: true)} on photos, " +
                  $"{QuickstartRun.DefaultEpochs(photos: false)} on Fashion-MNIST, the same table on every machine).",
};
var minutes = new Option<double>("--minutes")
{
    Description = "Time box for pre-training, in minutes: a short calibration run measures the speed and the epochs are cut " +
                  "to what fits (with a warning that the figures will differ); 0 = no box.",
    DefaultValueFactory = _ => 0,
};
var output = new Option<DirectoryInfo>("--out") { Description = "Where to write the pictures, the weights and summary.json.", DefaultValueFactory = _ => new DirectoryInfo("quickstart-output") };
var imageSize = new Option<int?>("--image-size") { Description = "Model input size for --images (default 32) or --weights (default: the weights' own size; ConvNeXt V2 weights need it)." };
var channels = new Option<int>("--channels") { Description = "Channels for --images: 3 (RGB) or 1 (grey).", DefaultValueFactory = _ => 3 };
channels.AcceptOnlyFromAmong("1", "3");
var maxTrain = new Option<int?>("--max-train") { Description = "Use at most this many training images of the IDX data (e.g. 10000 of the full 60 000)." };
var maxTest = new Option<int?>("--max-test") { Description = "Use at most this many test images of the IDX data." };
var seed = new Option<int>("--seed") { Description = "Seed for libtorch and ML.NET.", DefaultValueFactory = _ => 0 };
var layers = new Option<int?>("--layers") { Description = "Blocks whose mean-pooled tokens make the features (default: all blocks of a model of up to 6, else the last 4)." };
var threads = new Option<int?>("--threads") { Description = "libtorch intra-op threads (default: libtorch's choice, one per core)." };

var root = new RootCommand("Mae.MLNet quickstart: masked-autoencoder pre-training, linear probe (L-BFGS) against raw pixels, reconstruction pictures.")
{
    data, images, sample, weights, model, device, precision, epochs, lr, minutes, output, imageSize, channels, maxTrain, maxTest, seed, threads, layers,
};
epochs.Validators.Add(r => { if (r.GetValueOrDefault<int?>() is < 1) r.AddError($"--epochs must be at least 1; got {r.GetValueOrDefault<int?>()}."); });
lr.Validators.Add(r => { if (r.GetValueOrDefault<double?>() is double v && !(v > 0 && v < 1)) r.AddError($"--lr must be in (0, 1); got {v}."); });
model.Validators.Add(r =>
{
    if (r.GetValueOrDefault<string?>() is string name && !Mae.MLNet.Model.MaeConfig.PresetNames.Contains(name.ToLowerInvariant()))
        r.AddError($"--model must be one of {string.Join(", ", Mae.MLNet.Model.MaeConfig.PresetNames)}; got '{name}'.");
});
minutes.Validators.Add(r => { if (r.GetValueOrDefault<double>() < 0) r.AddError($"--minutes must be ≥ 0; got {r.GetValueOrDefault<double>()}."); });
root.Validators.Add(result =>
{
    if (result.GetValue(data) is not null && result.GetValue(images) is not null)
        result.AddError("Give either --data (IDX files) or --images (a class-per-subfolder folder), not both.");
});
root.SetAction(result =>
{
    var settings = new QuickstartSettings
    {
        DataDirectory = result.GetValue(data)?.FullName,
        ImageFolder = result.GetValue(images)?.FullName,
        WeightsPath = result.GetValue(weights)?.FullName,
        Sample = result.GetValue(sample) == "fashion-mnist" ? QuickstartSample.FashionMnist : QuickstartSample.Photos,
        Model = result.GetValue(model),
        Device = result.GetValue(device) switch { "cpu" => MaeDevice.Cpu, "cuda" => MaeDevice.Cuda, _ => MaeDevice.Auto },
        Precision = result.GetValue(precision) switch { "fp32" => Mae.MLNet.Runtime.MaePrecision.Fp32, "bf16" => Mae.MLNet.Runtime.MaePrecision.Bf16, _ => Mae.MLNet.Runtime.MaePrecision.Auto },
        Epochs = result.GetValue(epochs),
        LearningRate = result.GetValue(lr),
        Minutes = result.GetValue(minutes),
        OutputDirectory = result.GetValue(output)!.FullName,
        ImageSize = result.GetValue(imageSize),
        Channels = result.GetValue(channels),
        MaxTrain = result.GetValue(maxTrain),
        MaxTest = result.GetValue(maxTest),
        Seed = result.GetValue(seed),
        Threads = result.GetValue(threads),
        Layers = result.GetValue(layers),
    };
    return QuickstartRun.Run(settings);
});
return root.Parse(args).Invoke();
