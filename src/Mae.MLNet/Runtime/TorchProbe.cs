namespace Mae.MLNet.Runtime;
