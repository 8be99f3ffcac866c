package recorder

// AppendJSONString is appendJSONString, for the external tests.
var AppendJSONString = appendJSONString
